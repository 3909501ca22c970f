"""Whole-scan segmentation of real scans with real model files (random weights, width 1/8).

Checks that the label map has exactly the input's geometry (also through a grid change:
the TCGA scan has 6.5 mm slices and a mirrored direction), that the .seg.nrrd carries
the classes' names and colours, and that batches, overwrite protection and image/model
mismatches behave as documented.
"""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
from inference_models import calibrated_model, crop_to_file

from SARCore.errors import DataError
from SARCore.inference import (
    Segmenter,
    SegmentOptions,
    load_segmentation_model,
    output_paths,
    segment_cases,
)
from SARCore.io.arrays import image_to_array

TCGA_START, TCGA_SIZE = (64, 48, 0), (128, 128, 25)  # a 100 x 100 mm block, all 25 slices


def assert_same_geometry(image: sitk.Image, reference: sitk.Image) -> None:
    assert image.GetSize() == reference.GetSize()
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)


@pytest.fixture(scope="module")
def flair_crop(tmp_path_factory, brats_flair) -> Path:
    """A real 80 x 88 x 48 FLAIR block around pat0001's tumor (1 mm)."""
    folder = tmp_path_factory.mktemp("flair")
    return crop_to_file(brats_flair, folder / "pat1_flair.nii.gz", (48, 80, 40), (80, 88, 48))


@pytest.fixture(scope="module")
def flair_model(tmp_path_factory, flair_crop) -> Path:
    return calibrated_model(tmp_path_factory.mktemp("m") / "flair.sarmodel", [flair_crop])


@pytest.fixture(scope="module")
def tcga_crop(tmp_path_factory, mri_tcga) -> Path:
    folder = tmp_path_factory.mktemp("tcga")
    return crop_to_file(mri_tcga, folder / "brain1.nrrd", TCGA_START, TCGA_SIZE)


def test_brats_flair_label_and_seg_nrrd(tmp_path, flair_crop, flair_model) -> None:
    report = segment_cases([flair_crop], flair_model, tmp_path)
    assert report.ok and [o["case"] for o in report.outputs] == ["pat1_flair"]
    label_path, seg_path = output_paths(tmp_path, "pat1_flair")
    assert report.outputs[0]["label"] == str(label_path)
    assert report.outputs[0]["segmentation"] == str(seg_path)
    source, label = sitk.ReadImage(str(flair_crop)), sitk.ReadImage(str(label_path))
    assert_same_geometry(label, source)
    values = image_to_array(label)
    assert set(np.unique(values)) == {0, 1}  # calibrated: a real, non-trivial split
    assert 0.05 < values.mean() < 0.95
    data, header = nrrd.read(str(seg_path))
    np.testing.assert_array_equal(data, values)  # same voxels, [x, y, z] order
    assert header["Segment0_Name"] == "tumor" and header["Segment0_LabelValue"] == "1"
    assert [float(c) for c in header["Segment0_Color"].split()] == [0.9, 0.2, 0.1]
    assert header["space"] == "left-posterior-superior"
    np.testing.assert_allclose(header["space origin"], source.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(np.diag(header["space directions"]), source.GetSpacing())


def test_thick_slice_nrrd_goes_back_to_its_own_grid(tmp_path, tcga_crop) -> None:
    """6.5 mm slices, mirrored y axis: run at 2 mm, label on the scan's grid, NRRD output."""
    model = calibrated_model(tmp_path / "t1.sarmodel", [tcga_crop], spacing=(2, 2, 2),
                             sequences=())
    report = segment_cases([tcga_crop], model, tmp_path / "out",
                           SegmentOptions(label_format="nrrd"))
    assert report.ok, report.failed
    label_path = Path(report.outputs[0]["label"])
    assert label_path.name == "brain1_label.nrrd"
    source, label = sitk.ReadImage(str(tcga_crop)), sitk.ReadImage(str(label_path))
    assert_same_geometry(label, source)
    assert source.GetDirection()[4] == -1.0  # the mirrored axis survived
    _, grid = Segmenter(load_segmentation_model(model)).prepare([source])
    assert grid.size == (50, 50, 81) and grid.spacing == (2.0, 2.0, 2.0)  # 100 x 100 x 162 mm
    assert 0 < image_to_array(label).mean() < 1


def test_fast_mode_runs_coarser_but_writes_the_scan_grid(tmp_path, flair_crop, flair_model
                                                         ) -> None:
    segmenter = Segmenter(load_segmentation_model(flair_model), SegmentOptions(fast=True))
    assert segmenter.preset.target_spacing == (2.0, 2.0, 2.0)
    volume, grid = segmenter.prepare([sitk.ReadImage(str(flair_crop))])
    assert grid.size == (40, 44, 24) and volume.shape == (1, 40, 44, 24)
    report = segment_cases([flair_crop], flair_model, tmp_path, SegmentOptions(fast=True))
    assert report.ok
    assert_same_geometry(sitk.ReadImage(report.outputs[0]["label"]),
                         sitk.ReadImage(str(flair_crop)))


def test_multiclass_softmax_writes_class_label_values(tmp_path, ct_small) -> None:
    classes = [{"name": "pancreas", "label": 2, "color": [0.1, 0.8, 0.1]},
               {"name": "lesion", "label": 7, "color": [0.9, 0.9, 0.0]}]
    model = calibrated_model(tmp_path / "ct.sarmodel", [ct_small], out_channels=3,
                             preset="pancreas", spacing=(3, 3, 3), sequences=(),
                             modalities=("CT",), classes=classes)
    report = segment_cases([ct_small], model, tmp_path / "out")
    assert report.ok, report.failed
    label = sitk.ReadImage(report.outputs[0]["label"])
    assert_same_geometry(label, sitk.ReadImage(str(ct_small)))
    assert set(np.unique(image_to_array(label))) == {0, 2, 7}
    _, header = nrrd.read(report.outputs[0]["segmentation"])
    assert (header["Segment0_Name"], header["Segment1_Name"]) == ("pancreas", "lesion")
    assert (header["Segment0_LabelValue"], header["Segment1_LabelValue"]) == ("2", "7")


def test_batch_with_a_bad_file_goes_on(tmp_path, flair_crop, flair_model) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.nii.gz").write_bytes(flair_crop.read_bytes())
    broken = folder / "broken.nii.gz"
    broken.write_bytes(flair_crop.read_bytes()[:5000])  # truncated
    report = segment_cases([folder], flair_model, tmp_path / "out")
    assert [o["case"] for o in report.outputs] == ["good"]
    assert [f["case"] for f in report.failed] == ["broken"]
    assert "broken.nii.gz" in report.failed[0]["error"]
    assert not output_paths(tmp_path / "out", "broken")[0].exists()


def test_existing_outputs_are_not_overwritten(tmp_path, flair_crop, flair_model) -> None:
    first = segment_cases([flair_crop], flair_model, tmp_path)
    assert first.ok
    label_path, _ = output_paths(tmp_path, "pat1_flair")
    label_path.write_bytes(b"keep me")
    again = segment_cases([flair_crop], flair_model, tmp_path)
    assert not again.outputs and "already exists" in again.failed[0]["error"]
    assert str(label_path) in again.failed[0]["error"] and "--overwrite" in again.failed[0]["error"]
    assert label_path.read_bytes() == b"keep me"
    forced = segment_cases([flair_crop], flair_model, tmp_path, SegmentOptions(overwrite=True))
    assert forced.ok and sitk.ReadImage(str(label_path)).GetSize() == (80, 88, 48)


def test_two_sequence_model_takes_a_case_folder_and_refuses_one_file(tmp_path,
                                                                     brats2015_cases) -> None:
    case = brats2015_cases[0]
    model = calibrated_model(tmp_path / "two.sarmodel", [case / "Flair_subtrMeanDivStd.nii.gz",
                                                         case / "T1c_subtrMeanDivStd.nii.gz"],
                             in_channels=2, sequences=("flair", "t1c"), spacing=(4, 4, 4))
    report = segment_cases([case, case / "Flair_subtrMeanDivStd.nii.gz"], model, tmp_path)
    assert [o["case"] for o in report.outputs] == [case.name]
    assert_same_geometry(sitk.ReadImage(report.outputs[0]["label"]),
                         sitk.ReadImage(str(case / "Flair_subtrMeanDivStd.nii.gz")))
    error = report.failed[0]["error"]
    assert "expects 2 sequences (flair, t1c)" in error and "single image" in error


def test_wrong_modality_and_channel_count_are_refused(tmp_path, brats2015_cases,
                                                      flair_crop) -> None:
    ct_model = calibrated_model(tmp_path / "ct.sarmodel", preset="ct", modalities=("CT",),
                                sequences=(), spacing=(4, 4, 4))
    report = segment_cases([brats2015_cases[0]], ct_model, tmp_path / "out")
    assert not report.outputs
    assert "scan is MRI but the model was trained on CT" in report.failed[0]["error"]
    segmenter = Segmenter(load_segmentation_model(ct_model))
    image = sitk.ReadImage(str(flair_crop))
    with pytest.raises(DataError, match=r"expects 1 input image\(s\).*got 2"):
        segmenter.segment([image, image])
    unnamed = calibrated_model(tmp_path / "unnamed.sarmodel", in_channels=2, sequences=())
    report = segment_cases([flair_crop], unnamed, tmp_path / "out2")
    assert "expects 2 input channels but its header names no 'sequences'" in \
        report.failed[0]["error"]


def test_plan_keeps_every_tensor_under_2_31_elements(flair_model) -> None:
    """A huge memory budget (a large GPU) must not plan a window batch whose widest
    activation passes 2**31 elements (32-bit indexing limits in conv kernels)."""
    from SARCore.inference.runtime import MAX_TENSOR_ELEMENTS

    segmenter = Segmenter(load_segmentation_model(flair_model), SegmentOptions(memory_gb=4096))
    channels = segmenter.model.net.encoder_channels[0]
    window, batch = segmenter.plan((1200, 1200, 1200))
    assert batch * channels * window[0] * window[1] * window[2] <= MAX_TENSOR_ELEMENTS
    smaller, one = segmenter.smaller_plan((1200, 1200, 1200), window, 1)
    assert one == 1 and smaller[0] * smaller[1] * smaller[2] < window[0] * window[1] * window[2]
