"""read_image / read_label on real scans, on real scans damaged in tmp_path, and on a
real scan written out as a DICOM series."""

from __future__ import annotations

import numpy as np
import pipeline_data as damage
import pytest
import SimpleITK as sitk

from SARCore.errors import DataError
from SARCore.io.discovery import discover_cases
from SARCore.io.readers import read_image, read_label


@pytest.mark.parametrize("fixture", ["ct_small", "ct_lung", "mri_tcga", "brats_flair"])
def test_reads_real_scans_with_their_geometry(fixture, request):
    path = request.getfixturevalue(fixture)
    image = read_image(path)
    reference = sitk.ReadImage(str(path))
    assert image.GetSize() == reference.GetSize() and image.GetDimension() == 3
    assert image.GetSpacing() == reference.GetSpacing()
    assert image.GetOrigin() == reference.GetOrigin()
    assert image.GetDirection() == reference.GetDirection()


def _expect(path, *words):
    with pytest.raises(DataError) as caught:
        read_image(path)
    message = str(caught.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message


def test_truncated_nifti_gz(ct_small, tmp_path):
    # ITK itself zero-fills the missing voxels without complaint; we must not.
    _expect(damage.truncated(ct_small, tmp_path / "cut.nii.gz"), "truncated")


def test_truncated_uncompressed_nifti(ct_small, tmp_path):
    whole = damage.rewritten(ct_small, tmp_path / "whole.nii")
    _expect(damage.truncated(whole, tmp_path / "cut.nii", 0.7), "truncated")


@pytest.mark.parametrize("fixture", ["ct_lung", "mri_tcga"])
def test_truncated_mha_and_nrrd(fixture, request, tmp_path):
    source = request.getfixturevalue(fixture)
    _expect(damage.truncated(source, tmp_path / f"cut{source.suffix}", 0.6), "cannot read")


def test_corrupt_file(ct_small, tmp_path):
    bad = tmp_path / "corrupt.nii.gz"
    data = bytearray(ct_small.read_bytes())
    data[:64] = bytes(64)  # gzip magic and NIfTI header gone
    bad.write_bytes(bytes(data))
    _expect(bad, "cannot read")


def test_two_d_image(ct_small, tmp_path):
    _expect(damage.single_slice_2d(ct_small, tmp_path / "slice.nii.gz"), "2D", "3D volume")


def test_single_slice_volume(ct_small, tmp_path):
    _expect(damage.cropped(ct_small, tmp_path / "one.nii.gz", (122, 101, 1)), "single slice")


def test_four_d_image(ct_small, tmp_path):
    _expect(damage.four_d(ct_small, tmp_path / "series.nii.gz"), "4D")


def test_vector_image(ct_small, tmp_path):
    _expect(damage.vector(ct_small, tmp_path / "rgb.nii.gz"), "2 components")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_or_inf_voxels(ct_small, tmp_path, value):
    _expect(damage.with_nan(ct_small, tmp_path / "nan.nii.gz", value), "6 voxel(s)", "NaN")


def test_constant_volume(ct_small, tmp_path):
    _expect(damage.constant(ct_small, tmp_path / "flat.nii.gz"), "constant")


def test_missing_file(tmp_path):
    _expect(tmp_path / "nowhere.nii.gz", "not found")


def test_label_values_kept_and_cast_to_integers(brats2015_cases):
    path = brats2015_cases[0] / "OTMultiClass.nii.gz"  # stored as float32
    label = read_label(path)
    assert label.GetPixelID() == sitk.sitkUInt8
    original = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert np.array_equal(sitk.GetArrayFromImage(label), original.astype(np.uint8))
    assert set(np.unique(sitk.GetArrayViewFromImage(label))) == {0, 1, 2, 3, 4}


def test_label_with_fractions_is_refused(brats_flair):
    with pytest.raises(DataError, match="non-integer"):
        read_label(brats_flair)  # a z-scored image, not a label


def _write_dicom_series(image: sitk.Image, folder) -> None:
    """``image`` as one CT DICOM file per slice, with the geometry tags set."""
    image = sitk.Cast(image, sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    orientation = "\\".join(f"{v:.6f}" for v in (*direction[0::3], *direction[1::3]))
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        for tag, value in (("0008|0060", "CT"), ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),
                           ("0020|000e", "1.2.826.0.1.3680043.2.1125.1.2"),
                           ("0020|0037", orientation), ("0020|0013", str(k + 1)),
                           ("0020|0032", "\\".join(f"{v:.6f}" for v in
                                                   image.TransformIndexToPhysicalPoint((0, 0, k)))),
                           ("0018|0050", f"{image.GetSpacing()[2]:.6f}"),
                           ("0008|0018", f"1.2.826.0.1.3680043.2.1125.1.3.{k + 1}")):
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{k:03d}.dcm"))
        writer.Execute(slice_)


def test_dicom_series_round_trip(ct_small, tmp_path):
    original = sitk.ReadImage(str(ct_small))
    folder = tmp_path / "series"
    folder.mkdir()
    _write_dicom_series(original, folder)
    (case,) = discover_cases([folder])
    assert case.case_id == "series" and len(case.images) == original.GetDepth()
    image = read_image(case.images)
    assert image.GetSize() == original.GetSize()
    assert np.allclose(image.GetSpacing(), original.GetSpacing(), atol=1e-4)
    assert np.allclose(image.GetOrigin(), original.GetOrigin(), atol=1e-3)
    assert np.allclose(image.GetDirection(), original.GetDirection(), atol=1e-5)
    assert np.array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(original))
    assert read_image(folder).GetSize() == original.GetSize()  # the folder itself works too
