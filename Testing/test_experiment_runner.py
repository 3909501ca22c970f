"""The experiment runner end to end on real scans with a tiny config: every stage runs,
a kill mid-way resumes, a second run skips everything, changed settings are refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import SimpleITK as sitk
import yaml
from pretrain_data import one_torch_thread

from SARCore.cli import main
from SARCore.errors import ConfigError
from SARCore.experiment import load_experiment, run_experiment
from SARCore.progress import NullReporter

TINY: dict[str, Any] = {
    "name": "tiny", "toy_run": True, "seed": 0, "device": "cpu",
    "pretraining": {
        "data": [{"path": "ct/chest_ct", "preset": "ct"},
                 {"path": "tcga_gbm_t1gd/brain1_image.nrrd", "preset": "mri"}],
        "spacing": [3, 3, 3],
        "cubes": {"per_volume": [2, 2, 4], "cube_shape": [32, 32, 16]},
        "methods": ["genesis"],
        "options": {"width_divisor": 8, "batch_size": 2, "epochs": 1, "max_steps": 2,
                    "val_fraction": 0.5}},
    "finetuning": {
        "inits": ["genesis", "scratch"], "label_fractions": [1.0, 0.5],
        "fraction_inits": ["scratch"], "data": "brats2015", "sequences": ["flair"],
        "labels": "tumor:>0", "preset": "brats", "spacing": [4, 4, 4], "trials": 2,
        "test_ratio": 0.25, "patch_size": [32, 32, 16], "patches_per_case": 2,
        "val_patches_per_case": 2, "batch_size": 2, "epochs": 1, "max_steps": 2},
    "segmentation": {"overlap": 0.25},
    "evaluation": {"size_label": "tumor"}}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def _write(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class _StopIn(NullReporter):
    """Ctrl-C during the first training step of ``stage``."""

    def __init__(self, stage: str):
        self.stage = stage

    def progress(self, step: int, total: int, message: str = "", **extra: Any) -> None:
        if extra.get("stage") == self.stage:
            raise KeyboardInterrupt


def test_tiny_experiment_runs_resumes_and_skips(data_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config_path = _write(tmp_path, TINY)
    config = load_experiment(config_path)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):  # killed in the second trial of the first run
        run_experiment(config, out, data_dir, _StopIn("finetune trial_1"))
    assert (out / "stages" / "pretrain-genesis.json").is_file()
    assert not (out / "stages" / "finetune-genesis-all.json").exists()

    result = run_experiment(config, out, data_dir)
    assert "pretrain-genesis" in result.skipped and "cubes" in result.skipped
    assert result.ran == ["finetune-genesis-all", "finetune-scratch-all", "finetune-scratch-1_2",
                          "segment-genesis-all", "segment-scratch-all", "segment-scratch-1_2",
                          "evaluate"]
    report = result.report.read_text(encoding="utf-8")
    assert "Toy run" in report and "| Genesis |" in report and "| Scratch |" in report
    assert "Table 4" in report and "(evaluation/dice_vs_fraction.png)" in report
    for name in ("table2.md", "ttest.md", "table4.md", "scores.csv", "finetune_loss_curves.png",
                 "dice_vs_fraction.png"):
        assert (out / "evaluation" / name).is_file(), name
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert summary["reference"] == "Genesis"
    assert 0.0 <= summary["dice"]["Scratch"]["tumor_all"]["mean"] <= 1.0
    assert summary["efficiency"]["Scratch"].keys() == {"1.0", "0.5"}
    split = json.loads((out / "finetuning/scratch/all/trial_0/split.json").read_text())
    test_case = split["test"][0]
    prediction = out / "finetuning/scratch/all/trial_0/predictions" / f"{test_case}_label.nii.gz"
    assert sitk.ReadImage(str(prediction)).GetSize() == (240, 240, 155)  # the scan's own grid

    again = run_experiment(config, out, data_dir)
    assert again.ran == [] and len(again.skipped) == len(result.ran) + 4  # 2 preprocess,
    # cubes and pre-training were already skipped by the second run

    assert main(["experiment", str(config_path), "--data-root", str(data_dir), "--out",
                 str(out), "--progress", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["ran"] == []

    changed = {**TINY, "finetuning": {**TINY["finetuning"], "epochs": 2}}
    with pytest.raises(ConfigError, match="already run with other settings"):
        run_experiment(load_experiment(_write(tmp_path, changed)), out, data_dir)


@pytest.mark.parametrize(("change", "message"), [
    ({"pretraining": {**TINY["pretraining"], "methods": ["sar", "simclr"]}}, "simclr"),
    ({"finetuning": {**TINY["finetuning"], "inits": ["sar", "scratch"]}},
     "not pre-trained here"),
    ({"finetuning": {**TINY["finetuning"], "fraction_inits": ["sar"]}}, "not among the inits"),
    ({"finetuning": {**TINY["finetuning"], "label_fractions": [1.0, 0]}}, r"in \(0, 1\]"),
    ({"finetuning": {**TINY["finetuning"], "label_fraction": 0.5}}, "must not set"),
    ({"finetuning": {**TINY["finetuning"], "epoch": 3}}, "did you mean 'epochs'"),
    ({"segmentaton": {}}, "did you mean 'segmentation'"),
])
def test_bad_experiment_files_are_refused(tmp_path: Path, change: dict[str, Any],
                                          message: str) -> None:
    path = _write(tmp_path, {**TINY, **change})
    with pytest.raises(ConfigError, match=message) as info:
        load_experiment(path)
    assert str(path) in str(info.value)


def test_labeled_scans_among_the_pretraining_data_are_refused(data_dir: Path,
                                                              tmp_path: Path) -> None:
    leaky = {**TINY, "pretraining": {**TINY["pretraining"], "data": [
        {"path": "ct/chest_ct", "preset": "ct"}, {"path": "brats2015", "preset": "mri"}]}}
    with pytest.raises(ConfigError, match="also pre-training scans"):
        run_experiment(load_experiment(_write(tmp_path, leaky)), tmp_path / "out", data_dir)
    assert not (tmp_path / "out" / "stages").exists()
