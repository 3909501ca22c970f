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
    """``"fraction"`` rule: the scale's fraction of each axis's side, times one jitter."""
    factor = SCALE_FRACTIONS[scale] * (1.0 + rng.uniform(-jitter, jitter))
    return tuple(int(min(n, max(1, round(n * factor)))) for n in shape)


def zoom_side(shape: tuple[int, ...], spacing: tuple[float, ...], scale: int,
              rng: np.random.Generator, jitter: float,
              cube_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``"zoom"`` rule: a physical box with ``cube_shape``'s aspect (2:2:1), in-plane side
    = the scale's fraction of the in-plane extent, shrunk as a whole to fit the volume.

    The z side in voxels is rounded first and the in-plane sides derived from it, so on
    isotropic grids the aspect is exact and the zoom equal on every axis.
    """
    factor = SCALE_FRACTIONS[scale] * (1.0 + rng.uniform(-jitter, jitter))
    extent = min(n * s for n, s in zip(shape[:2], spacing[:2]))  # in-plane extent, mm
    mm = np.array([extent * factor * c / cube_shape[0] for c in cube_shape])
    fit = min(1.0, *(n * s / m for n, s, m in zip(shape, spacing, mm)))
    mm *= fit
    z = int(min(shape[2], max(1, round(mm[2] / spacing[2]))))
    per_mm = z * spacing[2] / mm[2]  # keep the aspect the rounding of z gave
    xy = [int(min(n, max(1, round(m * per_mm / s))))
          for n, m, s in zip(shape[:2], mm[:2], spacing[:2])]
    return (xy[0], xy[1], z)


def foreground_fraction(mask: np.ndarray, start: tuple[int, ...], side: tuple[int, ...]) -> float:
    region = mask[tuple(slice(a, a + n) for a, n in zip(start, side))]
    return np.count_nonzero(region) / region.size


def choose_box(mask: np.ndarray, scale: int, rng: np.random.Generator,
               config: CubeConfig, spacing: tuple[float, ...] = (1.0, 1.0, 1.0)) -> Box:
    """A random box of class ``scale`` with enough foreground (``mask`` is ``[x, y, z]``,
    ``spacing`` its voxel size in mm, used by the ``"zoom"`` rule)."""
    best: Box | None = None
    for _ in range(config.max_tries):
        if config.crop_rule == "mg":
            side = tuple(min(n, c) for n, c in zip(mask.shape, config.cube_shape))
        elif config.crop_rule == "zoom":
            side = zoom_side(mask.shape, spacing, scale, rng, config.jitter,
                             config.cube_shape)
        else:
            side = crop_side(mask.shape, scale, rng, config.jitter)
        start = tuple(int(rng.integers(0, n - s + 1)) for n, s in zip(mask.shape, side))
        fraction = foreground_fraction(mask, start, side)
        if fraction >= config.min_foreground:
            return Box(start, side, fraction, True)
        if best is None or fraction > best.foreground:
            best = Box(start, side, fraction, False)
    return best
