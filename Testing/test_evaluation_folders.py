"""Matching prediction files to ground truth, and scoring a folder of real labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SARCore.errors import DataError
from SARCore.evaluation.folders import (
    case_key,
    evaluate_folder,
    prediction_files,
    prediction_runs,
    truth_files,
)


def test_case_keys() -> None:
    assert case_key(Path("brain1_label.nii.gz")) == "brain1"
    assert case_key(Path("pat_7-seg.nrrd")) == "pat_7"
    assert case_key(Path("case.mha")) == "case"


def test_tcga_folder_pairs_and_seg_nrrd_is_skipped(tmp_path, mri_tcga) -> None:
    truth_dir = mri_tcga.parent
    truth = truth_files(truth_dir)
    assert truth["brain1_image"].name == "brain1_label.nrrd"
    label = sitk.ReadImage(str(truth["brain1_image"]))
    sitk.WriteImage(label, str(tmp_path / "brain1_image_label.nii.gz"))
    sitk.WriteImage(label, str(tmp_path / "brain1_image.seg.nrrd"))  # not a second prediction
    assert list(prediction_files(tmp_path)) == ["brain1_image"]
    [score] = evaluate_folder(tmp_path, truth_dir, ["1"])
    assert (score.case, score.label, score.dice, score.hd95) == ("brain1_image", "1", 1.0, 0.0)
    spacing = np.prod(label.GetSpacing())
    expected_ml = np.count_nonzero(sitk.GetArrayViewFromImage(label)) * spacing / 1000
    assert score.truth_ml == pytest.approx(expected_ml)


def test_folder_of_label_files_only(tmp_path, mri_tcga) -> None:
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    pred_dir.mkdir()
    label = sitk.ReadImage(str(mri_tcga).replace("_image", "_label"))
    sitk.WriteImage(label, str(truth_dir / "c1.nii.gz"))
    sitk.WriteImage(label * 0, str(pred_dir / "c1_label.nii.gz"))
    [score] = evaluate_folder(pred_dir, truth_dir, ["1"])
    assert score.dice == 0.0 and np.isnan(score.hd95) and score.pred_ml == 0.0


def test_prediction_on_another_grid_is_refused(tmp_path, mri_tcga) -> None:
    label = sitk.ReadImage(str(mri_tcga).replace("_image", "_label"))
    moved = sitk.Image(label)
    moved.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(moved, str(tmp_path / "brain1_image_label.nii.gz"))
    with pytest.raises(DataError, match="not on its ground truth's grid: spacing") as info:
        evaluate_folder(tmp_path, mri_tcga.parent, ["1"])
    assert info.value.path.endswith("brain1_image_label.nii.gz")


def test_runs_are_sub_folders(tmp_path) -> None:
    with pytest.raises(DataError, match="no label maps found"):
        prediction_runs(tmp_path)
    for run in ("fold_1", "fold_2"):
        (tmp_path / run).mkdir()
        sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkUInt8), str(tmp_path / run / "a_label.nrrd"))
    (tmp_path / "notes").mkdir()  # holds no label map: not a run
    runs = prediction_runs(tmp_path)
    assert list(runs) == ["fold_1", "fold_2"] and list(runs["fold_1"]) == ["a"]
