"""preprocess_image on real CT and MRI: geometry, value ranges per preset, labels, and
the inputs it must refuse."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from SARCore.errors import DataError
from SARCore.io.readers import read_image, read_label
from SARCore.preprocess import get_preset, preprocess_image


def _array(image):
    return sitk.GetArrayFromImage(image)


def _assert_geometry_kept(source, result, spacing):
    assert result.GetSpacing() == pytest.approx(spacing)
    assert result.GetOrigin() == source.GetOrigin()
    assert result.GetDirection() == source.GetDirection()
    extent = np.multiply(source.GetSize(), source.GetSpacing())
    new_extent = np.multiply(result.GetSize(), result.GetSpacing())
    assert np.all(np.abs(extent - new_extent) <= np.array(spacing) / 2 + 1e-6)


@pytest.mark.parametrize("fixture, preset, spacing", [
    ("ct_small", "ct", (2.0, 2.0, 2.0)),
    ("ct_lung", "ct", (2.0, 2.0, 2.0)),
    ("mri_tcga", "mri", (2.0, 2.0, 2.5)),
])
def test_pretraining_presets_give_unit_range(fixture, preset, spacing, request):
    source = read_image(request.getfixturevalue(fixture))
    result, label = preprocess_image(source, get_preset(preset, target_spacing=spacing))
    _assert_geometry_kept(source, result, spacing)
    values = _array(result)
    assert label is None and values.dtype == np.float32
    assert values.min() == 0.0 and values.max() == pytest.approx(1.0)


def test_ct_minmax_is_over_the_clipped_range(ct_small):
    source = read_image(ct_small)  # -1100 .. 1207 HU: both ends get clipped
    preset = get_preset("ct", target_spacing=(3.0, 3.0, 3.0), min_shape=(1, 1, 1))
    result, _ = preprocess_image(source, preset)
    raw = np.clip(_array(source).astype(np.float32), -1000, 1000)
    assert np.allclose(_array(result), (raw + 1000) / 2000, atol=1e-6)  # 3 mm: no resampling


def _assert_brain_law(values, inside):
    assert np.all(values[~inside] == 0)
    assert abs(values[inside].mean()) < 1e-3 and abs(values[inside].std() - 1) < 1e-3


def test_brats_zscore_inside_the_brain_and_zero_outside(brats_flair, brats2015_cases):
    """A source already z-scored (background a negative constant) still gets background 0:
    from its brain mask, and without one from the constant that fills its border."""
    source = read_image(brats_flair)
    raw = _array(source)
    assert raw[0, 0, 0] < 0 and np.count_nonzero(raw) == raw.size  # no zero background
    label = read_label(brats2015_cases[0] / "OTMultiClass.nii.gz")
    mask = read_label(brats2015_cases[0] / "brainmask.nii.gz")
    result, result_label = preprocess_image(source, get_preset("brats"), label, mask)
    assert result.GetSize() == source.GetSize()  # already 1 mm: grid unchanged
    _assert_brain_law(_array(result), _array(mask) > 0)
    assert np.array_equal(_array(result_label), _array(label))
    by_border, _ = preprocess_image(source, get_preset("brats"))
    _assert_brain_law(_array(by_border), raw != raw[0, 0, 0])
    assert np.mean(_array(by_border) == 0) > 0.5  # most of a 240x240x155 box is background


def test_brats_zscore_of_a_raw_skull_stripped_scan(data_dir):
    """A raw BraTS 2023 FLAIR (int16, background exactly 0) reaches the same law."""
    path = data_dir / "brats_4seq" / "BraTS-GLI-00001-000" / "BraTS-GLI-00001-000-t2f.nii.gz"
    source = read_image(path)
    result, _ = preprocess_image(source, get_preset("brats"))
    _assert_brain_law(_array(result), _array(source) != 0)


def test_labels_follow_the_image_to_the_new_grid(brats_flair, brats2015_cases):
    source = read_image(brats_flair)
    label = read_label(brats2015_cases[0] / "OTMultiClass.nii.gz")
    preset = get_preset("brats", target_spacing=(2.0, 2.0, 2.0))
    result, result_label = preprocess_image(source, preset, label)
    assert result_label.GetSize() == result.GetSize() == (120, 120, 78)
    assert result_label.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(_array(result_label))) == {0, 1, 2, 3, 4}
    values, inside = _array(result), _array(result) != 0
    assert abs(values[inside].mean()) < 0.05 and abs(values[inside].std() - 1) < 0.05


def test_pancreas_affine_normalisation(ct_small, data_dir):
    source = read_image(ct_small)
    label = read_label(data_dir / "ct/totalsegmentator_example/example_seg_for_ct_sm.nii.gz")
    preset = get_preset("pancreas", target_spacing=(3.0, 3.0, 3.0), label_map=[(7, 1), (5, 2)],
                        min_shape=(16, 16, 16))
    result, result_label = preprocess_image(source, preset, label)
    expected = (np.clip(_array(source).astype(np.float32), -96, 215) - 77.99) / 75.40
    assert np.allclose(_array(result), expected, atol=1e-5)
    mapped = _array(result_label)
    original = _array(label)
    assert np.array_equal(mapped == 1, (original == 7) | (original == 1))
    assert np.array_equal(mapped == 2, (original == 5) | (original == 2))


def test_inputs_are_not_modified(ct_small):
    source = read_image(ct_small)
    before = _array(source).copy()
    preprocess_image(source, get_preset("ct", target_spacing=(2.0, 2.0, 2.0)))
    assert np.array_equal(_array(source), before)


def test_volume_smaller_than_a_cube(ct_small):
    source = read_image(ct_small)  # 122x101x30 at 3 mm = 90 mm deep
    with pytest.raises(DataError, match="too small.*smaller than 64x64x32"):
        preprocess_image(source, get_preset("ct", target_spacing=(3.0, 3.0, 3.0)))


def test_constant_after_clipping(ct_small):
    source = read_image(ct_small) - 5000  # every voxel below -1000 HU
    with pytest.raises(DataError, match="constant volume after clipping"):
        preprocess_image(source, get_preset("ct", target_spacing=(2.0, 2.0, 2.0)))


def _shifted(label, **change):
    moved = sitk.Image(label)
    if "spacing" in change:
        moved.SetSpacing(change["spacing"])
    if "origin" in change:
        moved.SetOrigin(change["origin"])
    if "direction" in change:
        moved.SetDirection(change["direction"])
    return moved


@pytest.mark.parametrize("change, words", [
    ("size", "size"), ("spacing", "spacing"), ("origin", "origin"),
    ("direction", "direction"),
])
def test_label_on_another_grid(mri_tcga, data_dir, change, words):
    source = read_image(mri_tcga)
    label = read_label(data_dir / "tcga_gbm_t1gd/brain1_label.nrrd")
    bad = {
        "size": lambda: label[:, :, 1:],
        "spacing": lambda: _shifted(label, spacing=(0.8, 0.8, 6.5)),
        "origin": lambda: _shifted(label, origin=tuple(np.add(label.GetOrigin(), (0, 0, 3.25)))),
        "direction": lambda: _shifted(label, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)),
    }[change]()
    with pytest.raises(DataError, match=f"label grid does not match.*{words}"):
        preprocess_image(source, get_preset("mri", target_spacing=(2.0, 2.0, 2.0)), bad)


def test_label_within_tolerance_is_accepted(mri_tcga, data_dir):
    source = read_image(mri_tcga)
    label = read_label(data_dir / "tcga_gbm_t1gd/brain1_label.nrrd")
    nudged = _shifted(label, origin=tuple(np.add(label.GetOrigin(), (1e-4, 0, 0))))
    _, result_label = preprocess_image(source, get_preset("mri", target_spacing=(2.0,) * 3),
                                       nudged)
    assert set(np.unique(_array(result_label))) == {0, 1}
