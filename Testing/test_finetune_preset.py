"""``preset: auto`` picks what the downstream task needs, not the pre-training min-max
(issue 9, protocol fix 6), and says why."""

from __future__ import annotations

import json
from pathlib import Path

from finetune_data import coarse_config

from SARCore.finetune.config import FinetuneConfig
from SARCore.finetune.setup import LAYOUT_PRESETS, plan_run
from SARCore.models.modelfile import read_header


def test_brats_folders_get_the_brats_zscore_over_a_pretrained_minmax_header(
        data_dir: Path, small_pretrained_model: Path) -> None:
    header = read_header(small_pretrained_model)
    assert {p["normalization"] for p in header["preprocess"]} == {"minmax"}
    plan = plan_run(coarse_config(data_dir, init=str(small_pretrained_model), preset="auto",
                                  width_divisor=0))
    assert plan.preset.name == "brats" and plan.preset.normalization == "zscore_nonzero"
    assert "brats" in plan.preset_reason
    assert plan.preset.target_spacing == (4.0, 4.0, 4.0)  # --spacing still applies


def test_msd_pancreas_gets_the_pancreas_window(data_dir: Path, tmp_path: Path) -> None:
    ct = data_dir / "ct" / "totalsegmentator_example"
    for name in ("example_ct_sm.nii.gz", "example_seg_for_ct_sm.nii.gz"):  # inside the folder
        (tmp_path / name).symlink_to(ct / name)
    (tmp_path / "dataset.json").write_text(json.dumps({
        "name": "Pancreas", "modality": {"0": "CT"},
        "training": [{"image": "example_ct_sm.nii.gz",
                      "label": "example_seg_for_ct_sm.nii.gz"}] * 2}))
    plan = plan_run(FinetuneConfig(data=str(tmp_path), labels="pancreas:7", test_ratio=0.5,
                                   val_ratio=0.0))
    assert plan.preset.name == LAYOUT_PRESETS["msd-pancreas"] == "pancreas"
    assert plan.preset.clip == (-96.0, 215.0) and "pancreas" in plan.preset_reason.lower()


def test_unknown_layout_says_it_falls_back_to_minmax(data_dir: Path, tmp_path: Path) -> None:
    rows = ["id,image,label"] + [
        f"tcga{i},{data_dir}/tcga_gbm_t1gd/brain{i}_image.nrrd,"
        f"{data_dir}/tcga_gbm_t1gd/brain{i}_label.nrrd" for i in (1, 2)]
    (tmp_path / "cases.csv").write_text("\n".join(rows) + "\n")
    plan = plan_run(FinetuneConfig(data=str(tmp_path / "cases.csv"), modality="MRI",
                                   test_ratio=0.5, allow_outside_paths=True))
    assert plan.preset.name == "mri" and "min-max" in plan.preset_reason
    assert "--preset brats" in plan.preset_reason
