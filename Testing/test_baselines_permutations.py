"""The fixed jigsaw permutation set: valid, well spread, identical in every run."""

from __future__ import annotations

import hashlib

import pytest
import torch

from SARCore.pretrain import permutations as perms

#: Minimum pairwise Hamming distance measured for the default set (100 random: 21-22).
MIN_DISTANCE = 24
#: sha256 of the default set as little-endian int64, from numpy's frozen legacy RandomState.
FIXED_SET_SHA256 = "26ed2e2972ba9f48f575afcb628bff2c40e2c3dd6f097e5d71d2d51020b6aea2"


def _digest(table: torch.Tensor) -> str:
    return hashlib.sha256(table.numpy().astype("<i8").tobytes()).hexdigest()


def test_set_holds_100_distinct_permutations_of_27():
    table = perms.jigsaw_permutations()
    assert table.shape == (100, 27) and table.dtype == torch.int64
    assert torch.equal(table.sort(dim=1).values, torch.arange(27).expand(100, 27))
    assert len({tuple(row) for row in table.tolist()}) == 100


def test_greedy_selection_beats_random_permutations():
    table = perms.jigsaw_permutations()
    assert perms.min_hamming_distance(table) >= MIN_DISTANCE
    generator = torch.Generator().manual_seed(0)
    random_set = torch.stack([torch.randperm(27, generator=generator) for _ in range(100)])
    assert perms.min_hamming_distance(random_set) < MIN_DISTANCE


def test_hamming_distance_counts_differing_positions():
    a = torch.arange(27)
    b = a.clone()
    b[[0, 1, 2]] = b[[1, 2, 0]]
    assert perms.hamming_distances(torch.stack([a, b])).tolist() == [[0, 3], [3, 0]]
    assert perms.min_hamming_distance(torch.stack([a, a, b])) == 0


def test_set_is_deterministic_and_calls_get_copies():
    first = perms.jigsaw_permutations()
    first[0] = 0                                   # must not leak into the cache
    again = perms.jigsaw_permutations()
    perms._greedy_max_min.cache_clear()
    rebuilt = perms.jigsaw_permutations()
    assert torch.equal(again, rebuilt)
    assert sorted(again[0].tolist()) == list(range(27))


def test_set_never_changes():
    """The set defines the jigsaw classes: any change (numpy stream, code) must be deliberate."""
    assert _digest(perms.jigsaw_permutations()) == FIXED_SET_SHA256


@pytest.mark.parametrize("kwargs", [{"n_candidates": 50}, {"n_permutations": 1},
                                    {"n_items": 2.5}])
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        perms.jigsaw_permutations(**kwargs)
