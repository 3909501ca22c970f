"""Which voxels are brain: the region the ``brats`` z-score is taken over.

BraTS scans come in two kinds. Raw skull-stripped scans (BraTS 2018-2023, TCGA) have a
background of exactly 0. Scans already z-scored by their source (the BRATS 2015 cases of
DeepMedic, ``*_subtrMeanDivStd``) have a background that is a negative constant, so
"non-zero" there is the whole volume. Both kinds must reach the network with the same
intensity law (background 0, brain mean 0 and std 1), or a model fine-tuned on one sees
nothing on the other. The brain is therefore taken from the case's brain mask when the
folder has one, else as every voxel that differs from the constant that fills the
volume's border (a skull-stripped scan's border is background).
"""

from __future__ import annotations

import numpy as np

#: Share of the border voxels that must hold one value for it to count as background.
BORDER_CONSTANT_SHARE = 0.5


def border_values(values: np.ndarray) -> np.ndarray:
    """The voxels of the six faces of a 3D array (corners repeat; it does not matter)."""
    faces = [values[0], values[-1], values[:, 0], values[:, -1], values[:, :, 0],
             values[:, :, -1]]
    return np.concatenate([f.reshape(-1) for f in faces])


def background_value(values: np.ndarray) -> float:
    """The constant that fills most of the border, or 0 when no value does."""
    border = border_values(values)
    found, counts = np.unique(border, return_counts=True)
    top = int(np.argmax(counts))
    if counts[top] >= BORDER_CONSTANT_SHARE * border.size:
        return float(found[top])
    return 0.0


def brain_region(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Boolean brain region of ``values`` (any axis order): ``mask > 0`` when given, else
    every voxel unlike the border's constant (see the module docstring)."""
    if mask is not None:
        if mask.shape != values.shape:
            raise ValueError(f"brain mask shape {mask.shape} differs from the image's "
                             f"{values.shape}")
        return mask > 0
    return values != np.asarray(background_value(values), dtype=values.dtype)
