"""Intensity steps of the presets, in place on float32 ``[x, y, z]`` arrays.

Errors carry no file name (these functions see arrays only); the pipeline adds it.
"""

from __future__ import annotations

import numpy as np

from SARCore.errors import DataError


def clip(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip(values, low, high, out=values)


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale to ``[0, 1]`` by this volume's own minimum and maximum (paper sec. 3.1)."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        raise DataError(f"constant volume after clipping (every voxel is {low:g})",
                        hint="check the clip range against the scan's intensities")
    values -= low
    values *= np.float32(1.0 / (high - low))
    return values


def zscore_nonzero(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Subtract the mean and divide by the std of the ``inside`` voxels; others become 0.

    ``inside`` is the brain region of the source scan (:mod:`SARCore.preprocess.brain`):
    background becomes exactly 0 so it cannot be mistaken for tissue.
    """
    selected = values[inside]
    if selected.size < 2:
        raise DataError("no brain voxels to normalise (z-score over the brain region)")
    mean, std = mean_std(selected)
    if std == 0.0:
        raise DataError(f"the brain region is constant ({mean:g})")
    values -= np.float32(mean)
    values *= np.float32(1.0 / std)
    values[~inside] = 0.0
    return values


def affine(values: np.ndarray, shift: float, scale: float) -> np.ndarray:
    """``(values - shift) / scale``: fixed dataset statistics (MSD pancreas preset)."""
    values -= np.float32(shift)
    values *= np.float32(1.0 / scale)
    return values


def statistics(values: np.ndarray) -> dict[str, float]:
    """min, max, mean and std for the manifest."""
    mean, std = mean_std(values)
    return {"min": float(values.min()), "max": float(values.max()), "mean": mean, "std": std}


def mean_std(values: np.ndarray, chunk: int = 1 << 22) -> tuple[float, float]:
    """Mean and standard deviation in float64, a chunk at a time (no full float64 copy)."""
    flat = values.reshape(-1)
    total = 0.0
    for start in range(0, flat.size, chunk):
        total += float(flat[start:start + chunk].sum(dtype=np.float64))
    mean = total / flat.size
    squares = 0.0
    for start in range(0, flat.size, chunk):
        part = flat[start:start + chunk].astype(np.float64) - mean
        squares += float(np.dot(part, part))
    return mean, (squares / flat.size) ** 0.5
