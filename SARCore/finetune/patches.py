"""Training patches from labeled volumes held in memory, with foreground oversampling.

A tumor can fill less than 1 % of a scan, so uniformly placed 64x64x32 patches would
mostly teach "background". As in nnU-Net, a fixed share of each case's patches
(``foreground_fraction``, 1/3 by default) is centred on a voxel of a randomly chosen
foreground class; the rest are placed uniformly. Flips along the chosen axes are the
configurable augmentation.

Patch ``i`` of epoch ``e`` is drawn from ``numpy.random.default_rng([seed, e, i])``, so
the dataset is map-style and stateless: a resumed run, any worker count and any sampler
order give the same patches. A ``fixed`` dataset (validation) ignores the epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

#: Foreground coordinates kept per class and case (a random subset of larger regions).
MAX_FOREGROUND_POINTS = 50_000


@dataclass
class Volume:
    """One preprocessed labeled case in memory.

    ``image``: ``(C, X, Y, Z)`` float16 or float32; ``label``: ``(X, Y, Z)`` uint8 class
    indices. Patches come out float32 either way.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    foreground: dict[int, np.ndarray] = field(default_factory=dict)  # class -> (N, 3)

    def __post_init__(self) -> None:
        if not self.foreground:
            self.foreground = foreground_points(self.label)


def foreground_points(label: np.ndarray, limit: int = MAX_FOREGROUND_POINTS,
                      ) -> dict[int, np.ndarray]:
    """Per foreground class, up to ``limit`` voxel coordinates ``(N, 3)`` int32."""
    points = {}
    rng = np.random.default_rng(0)
    for value in np.unique(label):
        if value == 0:
            continue
        coords = np.argwhere(label == value).astype(np.int32)
        if len(coords) > limit:
            coords = coords[rng.choice(len(coords), limit, replace=False)]
        points[int(value)] = coords
    return points


def pad_to_patch(volume: Volume, patch_size: Sequence[int]) -> Volume:
    """Pad axes shorter than the patch (image with its corner value, label with 0)."""
    short = [max(0, p - s) for p, s in zip(patch_size, volume.label.shape)]
    if not any(short):
        return volume
    widths = [(d // 2, d - d // 2) for d in short]
    channels = [np.pad(c, widths, constant_values=float(c[0, 0, 0])) for c in volume.image]
    label = np.pad(volume.label, widths)
    return Volume(volume.case_id, np.stack(channels).astype(volume.image.dtype), label)


def is_foreground_patch(index_in_case: int, fraction: float) -> bool:
    """Exactly ``round(n * fraction)`` of a case's first n patches are foreground ones."""
    return bool(np.floor((index_in_case + 1) * fraction) > np.floor(index_in_case * fraction))


class PatchDataset(Dataset):
    """``len = cases x patches_per_case``; item ``{"image": (C, X, Y, Z), "label": (X, Y, Z)}``."""

    def __init__(self, volumes: Sequence[Volume], patch_size: Sequence[int],
                 patches_per_case: int, foreground_fraction: float = 1 / 3,
                 flip_probability: float = 0.0, flip_axes: Sequence[int] = (0, 1, 2),
                 seed: int = 0, fixed: bool = False):
        if not volumes:
            raise ValueError("a patch dataset needs at least one volume")
        self.patch_size = tuple(int(p) for p in patch_size)
        self.volumes = [pad_to_patch(v, self.patch_size) for v in volumes]
        self.patches_per_case, self.foreground_fraction = patches_per_case, foreground_fraction
        self.flip_probability, self.flip_axes = flip_probability, tuple(flip_axes)
        self.seed, self.fixed, self.epoch = seed, fixed, 0

    def set_epoch(self, epoch: int) -> None:
        if not self.fixed:
            self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.volumes) * self.patches_per_case

    def corner(self, index: int) -> tuple[str, tuple[int, int, int], np.random.Generator]:
        """Which case, where the patch starts, and the generator for what follows."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        volume = self.volumes[index % len(self.volumes)]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        shape = volume.label.shape
        classes = sorted(volume.foreground)
        if classes and is_foreground_patch(index // len(self.volumes), self.foreground_fraction):
            points = volume.foreground[classes[int(rng.integers(len(classes)))]]
            centre = points[int(rng.integers(len(points)))]
            start = [int(c) - p // 2 for c, p in zip(centre, self.patch_size)]
        else:
            start = [int(rng.integers(0, s - p + 1)) for s, p in zip(shape, self.patch_size)]
        start = [min(max(0, b), s - p) for b, s, p in zip(start, shape, self.patch_size)]
        return volume.case_id, (start[0], start[1], start[2]), rng

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        case_id, (x, y, z), rng = self.corner(index)
        volume = self.volumes[index % len(self.volumes)]
        px, py, pz = self.patch_size
        image = volume.image[:, x:x + px, y:y + py, z:z + pz]
        label = volume.label[x:x + px, y:y + py, z:z + pz]
        for axis in self.flip_axes:
            if self.flip_probability and rng.random() < self.flip_probability:
                image, label = np.flip(image, axis + 1), np.flip(label, axis)
        return {"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
                "label": torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64))}
