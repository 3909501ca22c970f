"""discover_cases on the real BraTS folders, a real MSD-layout dataset built in tmp_path,
plain folders of real scans, and bad inputs."""

from __future__ import annotations

import json
import os

import pipeline_data
import pytest

from SARCore.errors import ConfigError, DataError
from SARCore.io.discovery import discover_cases


def test_brats2015_flair_with_manual_labels(data_dir):
    cases = discover_cases([data_dir / "brats2015"])
    assert [c.case_id for c in cases] == [f"brats_2013_pat000{i}_1" for i in range(1, 5)]
    for case in cases:
        assert case.images[0].name == "Flair_subtrMeanDivStd.nii.gz"
        assert case.label.name == "OTMultiClass.nii.gz"  # never brainmask.nii.gz
        assert case.brain_mask.name == "brainmask.nii.gz"  # the brats z-score's region
        assert case.modality == "MRI" and case.problem is None


@pytest.mark.parametrize("sequence, expected", [
    ("flair", ["BraTS-GLI-00001-000-t2f.nii.gz", "TCGA-DU-7294_fla_bet.nii.gz",
               "TCGA-FG-6692_fla_bet.nii.gz"]),
    ("t1", ["BraTS-GLI-00001-000-t1n.nii.gz", "TCGA-DU-7294_t1_bet.nii.gz",
            "TCGA-FG-6692_t1_bet.nii.gz"]),
    ("t1c", ["BraTS-GLI-00001-000-t1c.nii.gz", "TCGA-DU-7294_t1c_bet.nii.gz",
             "TCGA-FG-6692_t1c_bet.nii.gz"]),
    ("t2", ["BraTS-GLI-00001-000-t2w.nii.gz", "TCGA-DU-7294_t2_bet.nii.gz",
            "TCGA-FG-6692_t2_bet.nii.gz"]),
])
def test_brats_4seq_sequence_choice(data_dir, sequence, expected):
    cases = discover_cases([data_dir / "brats_4seq"], sequence=sequence)
    assert [c.images[0].name for c in cases] == expected
    assert [c.label.name if c.label else None for c in cases] == [
        None, "fusion_simple_seg.nii.gz", "fusion_simple_seg.nii.gz"]


def test_all_sequences_give_one_case_each(data_dir):
    cases = discover_cases([data_dir / "brats_4seq" / "TCGA-DU-7294"], sequence="all")
    assert sorted(c.case_id for c in cases) == [f"TCGA-DU-7294_{s}" for s in
                                                ("flair", "t1", "t1c", "t2")]
    assert len({c.images[0] for c in cases}) == 4


def test_missing_sequence_is_a_case_problem(data_dir, tmp_path):
    folder = tmp_path / "case_1"
    folder.mkdir()
    os.symlink(data_dir / "brats_4seq/TCGA-DU-7294/TCGA-DU-7294_t1c_bet.nii.gz",
               folder / "case_1_t1c.nii.gz")
    (case,) = discover_cases([folder], sequence="flair")
    assert str(folder) in case.problem and "no flair" in case.problem and "t1c" in case.problem


def test_msd_layout(ct_small, ct_lung, data_dir, tmp_path):
    seg = data_dir / "ct/totalsegmentator_example/example_seg_for_ct_sm.nii.gz"
    mask = data_dir / "ct/lung_ct/3DCT_lung_baseline_mask.mha"
    root = pipeline_data.msd_dataset(tmp_path / "Task07", [(ct_small, seg), (ct_lung, mask)])
    cases = discover_cases([root])
    assert [c.case_id for c in cases] == ["case_000", "case_001"]
    assert all(c.modality == "CT" and c.label is not None and c.problem is None for c in cases)
    assert cases[0].images[0].resolve() == ct_small and cases[1].label.resolve() == mask


def test_msd_missing_file_names_file_and_dataset_json(ct_small, data_dir, tmp_path):
    seg = data_dir / "ct/totalsegmentator_example/example_seg_for_ct_sm.nii.gz"
    root = pipeline_data.msd_dataset(tmp_path / "Task", [(ct_small, seg)],
                                     missing=["gone.nii.gz"])
    cases = discover_cases([root])
    assert cases[0].problem is None
    assert "gone.nii.gz" in cases[1].problem and "dataset.json" in cases[1].problem


def test_msd_unreadable_dataset_json(tmp_path):
    (tmp_path / "dataset.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="dataset.json"):
        discover_cases([tmp_path])


def test_msd_modality_names_map_to_mri(ct_small, data_dir, tmp_path):
    seg = data_dir / "ct/totalsegmentator_example/example_seg_for_ct_sm.nii.gz"
    root = pipeline_data.msd_dataset(tmp_path / "T", [(ct_small, seg)], modality="T2")
    assert discover_cases([root])[0].modality == "MRI"
    spec = json.loads((root / "dataset.json").read_text())
    assert spec["training"][0]["image"].startswith("./imagesTr/")


def test_plain_folder_pairs_labels_by_name(data_dir):
    cases = discover_cases([data_dir / "tcga_gbm_t1gd", data_dir / "ct" / "lung_ct"])
    pairs = {c.images[0].name: c.label.name for c in cases}
    assert pairs == {"brain1_image.nrrd": "brain1_label.nrrd",
                     "brain2_image.nrrd": "brain2_label.nrrd",
                     "3DCT_lung.mha": "3DCT_lung_baseline_mask.mha"}


def test_modality_override_and_single_file(ct_small):
    (case,) = discover_cases([ct_small], modality="ct")
    assert case.case_id == "example_ct_sm" and case.modality == "CT" and case.label is None


def test_duplicate_case_ids_are_made_unique(ct_small, tmp_path):
    other = tmp_path / "example_ct_sm.nii.gz"
    os.symlink(ct_small, other)
    ids = [c.case_id for c in discover_cases([ct_small, other])]
    assert ids == ["example_ct_sm", "example_ct_sm-2"]


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="input not found"):
        discover_cases([tmp_path / "nowhere"])
    (tmp_path / "notes.txt").write_text("no scans here", encoding="utf-8")
    with pytest.raises(DataError, match="no images found"):
        discover_cases([tmp_path])
    with pytest.raises(ConfigError, match="sequence"):
        discover_cases([tmp_path], sequence="flare")


def test_folder_of_same_sequence_scans_is_not_one_brats_case(data_dir, tmp_path):
    for number in (1, 2):
        os.symlink(data_dir / f"tcga_gbm_t1gd/brain{number}_image.nrrd",
                   tmp_path / f"sub0{number}_t1.nrrd")
    cases = discover_cases([tmp_path])
    assert [c.case_id for c in cases] == ["sub01_t1", "sub02_t1"]
    assert all(c.problem is None and c.modality is None for c in cases)
