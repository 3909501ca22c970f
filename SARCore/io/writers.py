"""Atomic, verified image writing: a volume appears under its name only when complete.

ITK's writers do not raise on a short write (disk full, a file-size limit): they leave a
truncated file and report success. So the temporary file is read back before the rename:
it must open, have the size and pixel type written, and (NIfTI) hold every byte its
header promises, with a valid gzip checksum.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from SARCore.atomic import atomic_path
from SARCore.errors import DataError, WriteError
from SARCore.io.geometry import Geometry, grid_mismatch, is_orthogonal
from SARCore.io.nifti_check import check_nifti_file, is_nifti
from SARCore.io.paths import check_itk_path
from SARCore.io.readers import sitk_reason


def _verifier(image: sitk.Image):
    grid, pixel = Geometry.of(image), image.GetPixelID()

    def verify(tmp: Path) -> None:
        if is_nifti(tmp):
            check_nifti_file(tmp)  # length and gzip CRC: ITK's reader zero-fills a cut file
        back = sitk.ReadImage(str(tmp))
        if back.GetPixelID() != pixel:
            raise OSError(0, f"read back as {back.GetPixelIDTypeAsString()}")
        moved = grid_mismatch(grid, Geometry.of(back))
        if moved:
            raise OSError(0, f"read back on another grid: {moved}")
        sitk.GetArrayViewFromImage(back).sum()  # touch every voxel: a cut stream fails here
    return verify


def check_storable(image: sitk.Image, path: Path) -> None:
    """Refuse a grid the file format would silently change (NIfTI has no shear)."""
    if is_nifti(path) and not is_orthogonal(image.GetDirection()):
        raise DataError("the scan's direction matrix is not orthogonal (a sheared grid), "
                        "which a NIfTI file cannot store: the output would not overlay the "
                        "scan", path, "write NRRD instead (e.g. --label-format nrrd) or "
                        "resample the scan onto an orthogonal grid")


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write ``image`` to ``path`` (format from the suffix, e.g. ``.nii.gz``) atomically."""
    path = Path(path)
    check_itk_path(path)
    check_storable(image, path)
    try:
        # atomic_path keeps the suffix on the temporary name, so SimpleITK still
        # picks the right format from it.
        with atomic_path(path, verify=_verifier(image)) as tmp:
            sitk.WriteImage(image, str(tmp), compress)
    except RuntimeError as exc:
        raise WriteError(f"cannot write image: {sitk_reason(exc)}", path,
                         "check free disk space and that the folder is writable") from exc
    return path
