"""Read one image or label with SimpleITK and refuse what the pipeline cannot use.

Every problem becomes a :class:`~SARCore.errors.DataError` naming the file: unreadable or
truncated files, 2D, 4D and vector images, NaN/Inf voxels, constant volumes, non-integer
labels. NIfTI files also go through :mod:`SARCore.io.nifti_check`, because ITK's reader
silently zero-fills truncated files and zeroes NaN/Inf voxels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
import SimpleITK as sitk

from SARCore.errors import DataError
from SARCore.io.nifti_check import check_nifti_file, is_nifti
from SARCore.io.paths import check_itk_path

ImageSource = Union[str, Path, Sequence[Union[str, Path]]]  # Union: Python 3.9 (Slicer 5.8)


def read_image(source: ImageSource) -> sitk.Image:
    """A validated 3D scalar image from a file, a DICOM folder or a DICOM file list."""
    image, where = _read_3d(source)
    values = sitk.GetArrayViewFromImage(image)
    _check_finite(values, where)
    low, high = float(values.min()), float(values.max())
    if low == high:
        raise DataError(f"constant volume (every voxel is {low:g})", where,
                        "the scan holds no image content")
    return image


def read_label(source: ImageSource) -> sitk.Image:
    """A validated 3D label map, cast to the smallest integer type holding its values."""
    image, where = _read_3d(source)
    values = sitk.GetArrayViewFromImage(image)
    _check_finite(values, where)
    if values.dtype.kind == "f" and not np.array_equal(values, np.round(values)):
        raise DataError("label map has non-integer values", where,
                        "labels must be whole numbers (0 = background)")
    low, high = int(values.min()), int(values.max())
    if low < 0:
        raise DataError(f"label map has negative values (min {low})", where)
    target = sitk.sitkUInt8 if high < 256 else sitk.sitkUInt16 if high < 65536 else sitk.sitkInt32
    return image if image.GetPixelID() == target else sitk.Cast(image, target)


def source_files(source: ImageSource) -> list[Path]:
    """The files behind ``source`` (a DICOM folder expands to its one series)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        check_itk_path(path)
        return list(dicom_series_files(path)) if path.is_dir() else [path]
    return [Path(p) for p in source]


def dicom_series_files(folder: Path) -> tuple[Path, ...]:
    """The slice files of the single DICOM series in ``folder``, in GDCM's slice order."""
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise DataError("no DICOM series found in folder", folder,
                        "give image files or a folder holding one DICOM series")
    if len(series) > 1:
        raise DataError(f"folder holds {len(series)} DICOM series", folder,
                        "put each series in its own folder")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
    return tuple(Path(f) for f in files)


def sitk_reason(exc: BaseException) -> str:
    """The useful line of a SimpleITK/ITK exception text."""
    lines = [line.strip() for line in str(exc).splitlines() if "ERROR" in line.upper()]
    text = lines[-1].split("ERROR:", 1)[-1].strip() if lines else str(exc).strip()
    return re.sub(r"\w+\(0x[0-9a-fA-F]+\):\s*", "", text)


def _read_3d(source: ImageSource) -> tuple[sitk.Image, Path]:
    files = source_files(source)
    where = files[0].parent if len(files) > 1 else files[0]
    for path in files:
        check_itk_path(path)
        if not path.is_file():
            raise DataError("file not found", path)
    try:
        if len(files) > 1:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames([str(f) for f in files])
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(files[0]))
    except RuntimeError as exc:
        raise DataError(f"cannot read image: {sitk_reason(exc)}", where,
                        "the file is corrupt, truncated or not an image format") from exc
    _check_shape(image, where)
    if len(files) == 1 and is_nifti(files[0]):
        check_nifti_file(files[0])
    return image, where


def _check_shape(image: sitk.Image, where: Path) -> None:
    size = tuple(image.GetSize())
    if image.GetDimension() != 3 or min(size) < 2:
        kind = f"{image.GetDimension()}D" if image.GetDimension() != 3 else "a single slice"
        hint = ("split the series into 3D volumes" if image.GetDimension() > 3
                else "give a 3D scan, not a slice")
        raise DataError(f"image is {kind} (size {size}); a 3D volume is expected", where, hint)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"image has {image.GetNumberOfComponentsPerPixel()} components per "
                        "voxel; a scalar (grey-value) volume is expected", where,
                        "extract one channel first")


def _check_finite(values: np.ndarray, where: Path) -> None:
    if values.dtype.kind != "f":
        return
    bad = values.size - int(np.count_nonzero(np.isfinite(values)))
    if bad:
        raise DataError(f"{bad} voxel(s) are NaN or infinite", where,
                        "fix or mask them before preprocessing")
