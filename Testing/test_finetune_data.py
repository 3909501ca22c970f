"""Labeled cases, label mappings and training patches on the real BRATS 2015 scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from finetune_data import coarse_config

from SARCore.errors import ConfigError, DataError
from SARCore.finetune.data import cache_folder, find_labeled_cases, load_volumes
from SARCore.finetune.labels import map_labels, output_activation, parse_classes
from SARCore.finetune.patches import PatchDataset, Volume
from SARCore.finetune.setup import resolve_preset


@pytest.fixture(scope="module")
def brats_volumes(data_dir: Path, brats_cache_dir: Path) -> dict[str, Volume]:
    config = coarse_config(data_dir)
    cases = find_labeled_cases(config.data, config.sequences)
    preset = resolve_preset(config, None, "MRI")
    folder = cache_folder(brats_cache_dir, preset, config.classes, config.sequences)
    return load_volumes(cases, preset, config.classes, folder)


def test_brats_folders_give_four_labeled_flair_cases(data_dir: Path) -> None:
    cases = find_labeled_cases(data_dir / "brats2015", ["flair"])
    assert [c.case_id for c in cases] == [f"brats_2013_pat000{i}_1" for i in range(1, 5)]
    assert all(c.channels[0][0].name.startswith("Flair") for c in cases)
    assert all(c.label.name == "OTMultiClass.nii.gz" and c.modality == "MRI" for c in cases)


def test_two_sequences_become_two_channels(data_dir: Path) -> None:
    cases = find_labeled_cases(data_dir / "brats2015", ["flair", "t1c"])
    assert len(cases) == 4
    assert [p[0].name.split("_")[0] for p in cases[0].channels] == ["Flair", "T1c"]


def test_csv_of_image_label_pairs(data_dir: Path, tmp_path: Path) -> None:
    rows = ["id,image,label"] + [
        f"tcga{i},{data_dir}/tcga_gbm_t1gd/brain{i}_image.nrrd,"
        f"{data_dir}/tcga_gbm_t1gd/brain{i}_label.nrrd" for i in (1, 2)]
    (tmp_path / "cases.csv").write_text("\n".join(rows) + "\n")
    cases = find_labeled_cases(tmp_path / "cases.csv", modality="MRI",
                               allow_outside=True)  # absolute paths: allowed explicitly
    assert [c.case_id for c in cases] == ["tcga1", "tcga2"]
    assert cases[1].label.name == "brain2_label.nrrd"
    (tmp_path / "bad.csv").write_text("image,mask\na.nii.gz,b.nii.gz\n")
    with pytest.raises(DataError, match="lacks column"):
        find_labeled_cases(tmp_path / "bad.csv")


def test_missing_labeled_data_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        find_labeled_cases(tmp_path / "nothing")


def test_whole_tumor_and_multiclass_mappings_on_a_real_label(data_dir: Path) -> None:
    path = data_dir / "brats2015" / "brats_2013_pat0001_1" / "OTMultiClass.nii.gz"
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    whole = map_labels(labels, parse_classes("tumor:>0"))
    assert np.array_equal(whole == 1, labels > 0) and whole.max() == 1
    classes = parse_classes("edema:2,core:1|3|4")
    mapped = map_labels(labels, classes)
    assert np.array_equal(mapped == 1, labels == 2)
    assert np.array_equal(mapped == 2, np.isin(labels, [1, 3, 4]))
    assert output_activation(classes) == "softmax" and output_activation(parse_classes("t:1")) \
        == "sigmoid"


def test_bad_label_mappings_are_refused() -> None:
    for spec in ("tumor", "tumor:>x", "a:1,a:2", ""):
        with pytest.raises(ConfigError):
            parse_classes(spec)
    classes = parse_classes({"pancreas": "1", "tumor": {"rule": "2", "color": [1, 0, 0]}})
    assert classes[1].to_header() == {"name": "tumor", "label": 2, "color": [1.0, 0.0, 0.0],
                                      "source_labels": "2"}


def test_cached_volumes_are_whole_tumor_at_4_mm(brats_volumes: dict[str, Volume]) -> None:
    volume = brats_volumes["brats_2013_pat0001_1"]
    assert volume.image.shape == (1, 60, 60, 39) and volume.image.dtype == np.float16
    assert set(np.unique(volume.label)) == {0, 1} and list(volume.foreground) == [1]
    brain = volume.image[0][volume.image[0] != 0].astype(np.float64)
    assert abs(brain.mean()) < 0.05 and abs(brain.std() - 1) < 0.05  # z-score in the brain


def test_one_third_of_patches_are_centred_on_tumor(brats_volumes: dict[str, Volume]) -> None:
    volume = brats_volumes["brats_2013_pat0002_1"]
    dataset = PatchDataset([volume], (32, 32, 16), patches_per_case=9)
    centred = []
    for index in range(9):
        _, (x, y, z), _ = dataset.corner(index)
        centred.append(bool(volume.label[x + 16, y + 16, z + 8]))
    assert [centred[i] for i in (2, 5, 8)] == [True, True, True]
    assert sum(dataset[i]["label"].sum().item() > 0 for i in (2, 5, 8)) == 3


def test_patches_replay_per_epoch_and_change_between_epochs(
        brats_volumes: dict[str, Volume]) -> None:
    volumes = list(brats_volumes.values())
    dataset = PatchDataset(volumes, (32, 32, 16), 4, flip_probability=0.5)
    first = [dataset[i]["image"] for i in range(len(dataset))]
    assert all(torch.equal(a, dataset[i]["image"]) for i, a in enumerate(first))
    dataset.set_epoch(1)
    assert any(not torch.equal(a, dataset[i]["image"]) for i, a in enumerate(first))
    fixed = PatchDataset(volumes, (32, 32, 16), 2, fixed=True)
    before = fixed[3]["image"]
    fixed.set_epoch(5)
    assert torch.equal(before, fixed[3]["image"])


def test_flip_augmentation_mirrors_image_and_label(brats_volumes: dict[str, Volume]) -> None:
    volume = [brats_volumes["brats_2013_pat0003_1"]]
    plain = PatchDataset(volume, (32, 32, 16), 3, flip_axes=(0,))
    flipped = PatchDataset(volume, (32, 32, 16), 3, flip_probability=1.0, flip_axes=(0,))
    for index in range(3):
        a, b = plain[index], flipped[index]
        assert torch.equal(b["image"], torch.flip(a["image"], dims=(1,)))
        assert torch.equal(b["label"], torch.flip(a["label"], dims=(0,)))


def test_small_volumes_are_padded_to_the_patch(brats_volumes: dict[str, Volume]) -> None:
    big = brats_volumes["brats_2013_pat0004_1"]
    small = Volume("crop", big.image[:, 20:40, 20:40, 10:20].copy(),
                   big.label[20:40, 20:40, 10:20].copy())
    item = PatchDataset([small], (32, 32, 16), 2)[0]
    assert item["image"].shape == (1, 32, 32, 16) and item["label"].shape == (32, 32, 16)
    assert item["label"].dtype == torch.int64 and item["image"].dtype == torch.float32
