"""The fixed set of 3D jigsaw permutations (Taleb et al. 2020, after Noroozi & Favaro 2016).

A jigsaw classifier predicts *which* of a fixed set of permutations shuffled the 27
patches, so the set must be identical in every run, on every machine. It is rebuilt
here from a fixed seed instead of being shipped as a data file:

* 2000 candidate permutations of 27 items are drawn with numpy's legacy ``RandomState``,
  whose stream numpy keeps stable across versions;
* the first candidate is chosen, then repeatedly the candidate whose minimum Hamming
  distance to the chosen set is largest (ties: lowest index).

Searching all 27! permutations is impossible. With these settings the 100 chosen
permutations are pairwise at Hamming distance >= 24 (of 27; mean 26.1); 100 random
ones reach only 21-22, and 5000-20000 candidates do not raise the minimum above 24.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

N_PERMUTATIONS = 100
N_PATCHES = 27
N_CANDIDATES = 2000
SEED = 2020


def hamming_distances(permutations: torch.Tensor) -> torch.Tensor:
    """``(N, n)`` permutations -> ``(N, N)`` counts of positions where two differ."""
    return (permutations[:, None, :] != permutations[None, :, :]).sum(dim=-1)


def min_hamming_distance(permutations: torch.Tensor) -> int:
    """Smallest Hamming distance between two different rows (0 means a duplicate)."""
    distances = hamming_distances(permutations)
    distances.fill_diagonal_(permutations.shape[1] + 1)
    return int(distances.min())


@functools.lru_cache(maxsize=4)
def _greedy_max_min(n_permutations: int, n_items: int, n_candidates: int, seed: int) -> np.ndarray:
    candidates = np.random.RandomState(seed).rand(n_candidates, n_items).argsort(axis=1)
    chosen = [0]
    nearest = (candidates != candidates[0]).sum(axis=1)
    for _ in range(n_permutations - 1):
        index = int(nearest.argmax())
        chosen.append(index)
        nearest = np.minimum(nearest, (candidates != candidates[index]).sum(axis=1))
    result = candidates[chosen]
    result.setflags(write=False)
    return result


def jigsaw_permutations(n_permutations: int = N_PERMUTATIONS, n_items: int = N_PATCHES,
                        n_candidates: int = N_CANDIDATES, seed: int = SEED) -> torch.Tensor:
    """``(n_permutations, n_items)`` int64: row ``p`` puts cell ``perm[p][i]`` at position ``i``.

    Computed once per process (about 0.1 s) and cached; every call returns a fresh copy.
    """
    for name, value in (("n_permutations", n_permutations), ("n_items", n_items),
                        ("n_candidates", n_candidates)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2, not {value!r}")
    if n_candidates < n_permutations:
        raise ValueError(f"n_candidates ({n_candidates}) must be >= n_permutations "
                         f"({n_permutations})")
    chosen = _greedy_max_min(n_permutations, n_items, n_candidates, seed)
    return torch.from_numpy(chosen.copy()).long()
