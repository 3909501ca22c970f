"""Atomic image writing: a killed job never leaves a half-written volume."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from SARCore.atomic import atomic_path
from SARCore.errors import DataError
from SARCore.io.readers import sitk_reason


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` (format from the suffix, e.g. ``.nii.gz``) atomically."""
    path = Path(path)
    try:
        # atomic_path keeps the suffix on the temporary name, so SimpleITK still
        # picks the right format from it.
        with atomic_path(path) as tmp:
            sitk.WriteImage(image, str(tmp), compress)
    except RuntimeError as exc:
        raise DataError(f"cannot write image: {sitk_reason(exc)}", path) from exc
    return path

