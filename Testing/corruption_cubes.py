"""Real 64x64x32 cubes in [0, 1] for the corruption tests (no cube store needed).

Crops of two real scans, normalised like MG's pre-training input and resized with
trilinear interpolation: the TotalSegmentator example CT (clipped to [-1000, 1000] HU)
and a BRATS 2015 FLAIR (z-scored in the brain; clipped to its 0.5-99.5 percentiles).
"""

from __future__ import annotations

import functools
from pathlib import Path

import SimpleITK as sitk
import torch
import torch.nn.functional as F

from SARCore.io.arrays import image_to_array

CUBE = (64, 64, 32)


@functools.lru_cache(maxsize=4)
def _scan(path: str, kind: str) -> torch.Tensor:
    volume = torch.from_numpy(image_to_array(sitk.ReadImage(path), dtype="float32"))
    if kind == "ct":
        low, high = -1000.0, 1000.0
    else:
        sample = volume.flatten()[:: max(1, volume.numel() // 200000)]
        low, high = (float(torch.quantile(sample, q)) for q in (0.005, 0.995))
    return ((volume.clamp(low, high) - low) / (high - low)).contiguous()


def _crops(volume: torch.Tensor, count: int) -> list[torch.Tensor]:
    sx, sy, sz = volume.shape
    side = (min(sx, 96), min(sy, 96), min(sz, 48))
    crops = []
    for index in range(count):
        fx, fy, fz = 0.3 + 0.4 * (index % 2), 0.3 + 0.4 * (index // 2 % 2), 0.5
        corner = [round(f * (s - c)) for f, s, c in zip((fx, fy, fz), (sx, sy, sz), side)]
        crop = volume[corner[0]:corner[0] + side[0], corner[1]:corner[1] + side[1],
                      corner[2]:corner[2] + side[2]]
        crops.append(F.interpolate(crop[None, None], size=CUBE, mode="trilinear",
                                   align_corners=False)[0])
    return crops


def real_cubes(ct_path: Path, mri_path: Path, per_scan: int = 4) -> torch.Tensor:
    """``(2 * per_scan, 1, 64, 64, 32)`` float32 cubes in [0, 1]: CT crops, then MRI crops."""
    cubes = (_crops(_scan(str(ct_path), "ct"), per_scan)
             + _crops(_scan(str(mri_path), "mri"), per_scan))
    return torch.stack(cubes).clamp(0, 1)
