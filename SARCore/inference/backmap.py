"""Class probabilities on the network's grid -> a label map on the scan's own grid.

Why probabilities and not labels: the network usually runs on a different grid (1 mm, or
2 mm in fast mode) than the scan. Nearest-neighbour on labels would give staircase
boundaries 1-2 mm wide; interpolating each class's probability linearly onto the scan's
grid and deciding there (argmax, or >= 0.5 for a sigmoid output) gives boundaries at
the scan's own resolution, as nnU-Net does.

Memory stays bounded: one class at a time is resampled (float32, scan-sized) and
compared with the running best (float32, scan-sized); the label map is uint8/uint16. So
the peak here is about 9 bytes per scan voxel plus 4 per network-grid voxel, whatever
the number of classes. When both grids match, no resampling happens at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from SARCore.io.arrays import array_to_image, image_to_array
from SARCore.io.geometry import Geometry, grid_mismatch

#: A sigmoid output is foreground from this probability on.
THRESHOLD = 0.5
#: z-slices decided at once on the matching-grid path (bounds the int64 argmax scratch).
CHUNK_SLICES = 16


def label_dtype(label_values: Sequence[int]) -> type:
    return np.uint8 if max(label_values, default=0) < 256 else np.uint16


def decide(probabilities: np.ndarray, activation: str, label_values: Sequence[int]) -> np.ndarray:
    """``(K, ...)`` probabilities -> label values: argmax (softmax) or ``>= 0.5`` (sigmoid).

    ``label_values[i]`` is the value written for foreground channel ``i + 1`` (softmax) or
    for the single channel (sigmoid); background is 0. The softmax argmax makes an int64
    index array, so large volumes are decided a chunk at a time.
    """
    dtype = label_dtype(label_values)
    if activation == "sigmoid":  # no int64 temporaries: a bool mask and the label array only
        labels = np.zeros(probabilities.shape[1:], dtype=dtype)
        labels[probabilities[0] >= THRESHOLD] = label_values[0]
        return labels
    lookup = np.array([0, *label_values], dtype=dtype)
    return lookup[np.argmax(probabilities, axis=0)]


def labels_on_reference(probabilities: np.ndarray, grid: Geometry, reference: sitk.Image,
                        activation: str, label_values: Sequence[int]) -> sitk.Image:
    """Label map with exactly ``reference``'s size, spacing, origin and direction.

    ``probabilities`` is ``(K, X, Y, Z)`` on ``grid`` (the preprocessed scan's grid).
    """
    if grid_mismatch(Geometry.of(reference), grid) is None:
        labels = np.empty(probabilities.shape[1:], dtype=label_dtype(label_values))
        for z in range(0, labels.shape[2], CHUNK_SLICES):
            part = probabilities[..., z:z + CHUNK_SLICES].astype(np.float32)
            labels[..., z:z + CHUNK_SLICES] = decide(part, activation, label_values)
        return array_to_image(labels, reference)
    if activation == "sigmoid":
        probability = _resampled(probabilities[0], grid, reference, 0.0)
        return array_to_image(decide(probability[None], activation, label_values), reference)
    best = _resampled(probabilities[0], grid, reference, 1.0)  # background channel
    labels = np.zeros(best.shape, dtype=label_dtype(label_values))
    for channel, value in enumerate(label_values, start=1):
        probability = _resampled(probabilities[channel], grid, reference, 0.0)
        better = probability > best
        labels[better] = value
        np.maximum(best, probability, out=best)
        del probability, better
    return array_to_image(labels, reference)


def _resampled(channel: np.ndarray, grid: Geometry, reference: sitk.Image,
               outside: float) -> np.ndarray:
    """One class's probability linearly interpolated onto ``reference``'s voxel centres."""
    source = grid.apply(array_to_image(channel.astype(np.float32)))
    out = sitk.Resample(source, reference, sitk.Transform(), sitk.sitkLinear, outside,
                        sitk.sitkFloat32, True)
    return image_to_array(out)
