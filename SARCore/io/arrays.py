"""SimpleITK image <-> numpy array in SARCore's ``[x, y, z]`` axis order."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def image_to_array(image: sitk.Image, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Voxels of a 3D image as an ``[x, y, z]`` array (a copy)."""
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return np.ascontiguousarray(array, dtype=dtype)


def array_to_image(array: np.ndarray, reference: sitk.Image | None = None) -> sitk.Image:
    """An ``[x, y, z]`` array as an image; geometry copied from ``reference`` if given."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    if reference is not None:
        image.CopyInformation(reference)
    return image
