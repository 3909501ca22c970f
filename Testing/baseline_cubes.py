"""Real 64x64x32 pre-training cubes for the baseline tests, built from a real CT scan.

The cube store is another module's job; these tests only need a few realistic cubes:
crops of the TotalSegmentator example CT, clipped to [-1000, 1000] HU, scaled to [0, 1]
(as MG pre-processes CT) and resized with trilinear interpolation.
"""

from __future__ import annotations

import functools
from pathlib import Path

import SimpleITK as sitk
import torch
import torch.nn.functional as F

from SARCore.io.arrays import image_to_array

CUBE_SHAPE = (64, 64, 32)


@functools.lru_cache(maxsize=2)
def _normalised_volume(path: str) -> torch.Tensor:
    array = image_to_array(sitk.ReadImage(path), dtype="float32")
    return ((torch.from_numpy(array).clamp(-1000, 1000) + 1000) / 2000).contiguous()


def real_cubes(ct_path: Path, count: int = 4) -> torch.Tensor:
    """``(count, 1, 64, 64, 32)`` float32 cubes in [0, 1] from crops spread over the scan."""
    volume = _normalised_volume(str(ct_path))
    sx, sy, sz = volume.shape
    side_x, side_y = min(sx, 80), min(sy, 80)
    cubes = []
    for index in range(count):
        fx, fy = (index % 3) / 2, (index // 3 % 3) / 2
        x0, y0 = round(fx * (sx - side_x)), round(fy * (sy - side_y))
        crop = volume[x0:x0 + side_x, y0:y0 + side_y, :][None, None]
        cubes.append(F.interpolate(crop, size=CUBE_SHAPE, mode="trilinear", align_corners=False))
    return torch.cat(cubes).clamp(0, 1)
