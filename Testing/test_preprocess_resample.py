"""The separable resampler against SimpleITK's own 3D interpolators on real scans."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from SARCore.io.geometry import Geometry
from SARCore.preprocess.resample import resample_array


def _crop(path, size=(60, 50, 24)):
    image = sitk.Cast(sitk.ReadImage(str(path)), sitk.sitkFloat32)
    start = [(n - s) // 2 for n, s in zip(image.GetSize(), size)]
    return sitk.RegionOfInterest(image, size, start)


def _compare(image, spacing, kind, interpolator):
    target = Geometry.of(image).with_spacing(spacing)
    ours = resample_array(sitk.GetArrayFromImage(image), image.GetSpacing()[::-1],
                          spacing[::-1], target.size[::-1], kind)
    theirs = sitk.GetArrayFromImage(sitk.Resample(
        image, target.size, sitk.Transform(), interpolator, target.origin, target.spacing,
        target.direction, 0.0, image.GetPixelID()))
    assert ours.shape == theirs.shape
    # ITK writes the default value beyond the last voxel centre; compare the interior.
    inner = tuple(slice(2, n - 3) for n in ours.shape)
    return ours[inner], theirs[inner]


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 2.5, 3.0)])
def test_bspline_matches_sitk(ct_lung, spacing):
    ours, theirs = _compare(_crop(ct_lung), spacing, "bspline", sitk.sitkBSpline)
    assert np.abs(ours - theirs).max() < 0.05  # HU, float32 rounding only


def test_linear_matches_sitk(mri_tcga):
    ours, theirs = _compare(_crop(mri_tcga, (80, 80, 12)), (1.5, 1.5, 2.0), "linear",
                            sitk.sitkLinear)
    assert np.abs(ours - theirs).max() < 0.05


def test_nearest_matches_sitk_on_labels(data_dir):
    label = sitk.ReadImage(str(data_dir / "ct/totalsegmentator_example/example_seg_for_ct_sm.nii.gz"))
    target = Geometry.of(label).with_spacing((2.0, 2.0, 2.0))
    ours = resample_array(sitk.GetArrayFromImage(label), label.GetSpacing()[::-1],
                          (2.0, 2.0, 2.0), target.size[::-1], "nearest")
    theirs = sitk.GetArrayFromImage(sitk.Resample(
        label, target.size, sitk.Transform(), sitk.sitkNearestNeighbor, target.origin,
        target.spacing, target.direction, 0, label.GetPixelID()))
    assert ours.dtype == np.uint8
    inner = tuple(slice(0, n - 1) for n in ours.shape)
    assert np.array_equal(ours[inner], theirs[inner])


def test_same_spacing_is_identity(ct_small):
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(ct_small))).astype(np.float32)
    out = resample_array(array, (3.0, 3.0, 3.0), (3.0, 3.0, 3.0), array.shape)
    assert np.array_equal(out, array)


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        resample_array(np.zeros((4, 4, 4)), (1, 1, 1), (1, 1, 1), (4, 4, 4), "cubic")
    with pytest.raises(ValueError, match="agree"):
        resample_array(np.zeros((4, 4, 4)), (1, 1), (1, 1, 1), (4, 4, 4))
