"""Where to crop: random multi-scale boxes with background rejection.

Boxes are ``(start, side)`` in voxels of the ``[x, y, z]`` volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from SARCore.cubes.config import SCALE_FRACTIONS, CubeConfig


@dataclass(frozen=True)
class Box:
    start: tuple[int, int, int]
    side: tuple[int, int, int]
    foreground: float  # fraction of voxels above the background threshold
    accepted: bool  # False: no try reached min_foreground; the best one is kept

    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, a + n) for a, n in zip(self.start, self.side))


def crop_side(shape: tuple[int, ...], scale: int, rng: np.random.Generator,
              jitter: float) -> tuple[int, int, int]:
    """Side per axis: the scale's fraction of the volume side, times one jitter factor."""
    factor = SCALE_FRACTIONS[scale] * (1.0 + rng.uniform(-jitter, jitter))
    return tuple(int(min(n, max(1, round(n * factor)))) for n in shape)


def foreground_fraction(mask: np.ndarray, start: tuple[int, ...], side: tuple[int, ...]) -> float:
    region = mask[tuple(slice(a, a + n) for a, n in zip(start, side))]
    return np.count_nonzero(region) / region.size


def choose_box(mask: np.ndarray, scale: int, rng: np.random.Generator,
               config: CubeConfig) -> Box:
    """A random box of class ``scale`` with enough foreground (``mask`` is ``[x, y, z]``)."""
    best: Box | None = None
    for _ in range(config.max_tries):
        side = crop_side(mask.shape, scale, rng, config.jitter)
        start = tuple(int(rng.integers(0, n - s + 1)) for n, s in zip(mask.shape, side))
        fraction = foreground_fraction(mask, start, side)
        if fraction >= config.min_foreground:
            return Box(start, side, fraction, True)
        if best is None or fraction > best.foreground:
            best = Box(start, side, fraction, False)
    return best
