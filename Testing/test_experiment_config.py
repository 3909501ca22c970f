"""Experiment files: the shipped configs load, runs are planned fairly and in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from SARCore.experiment import load_experiment
from SARCore.experiment.config import fraction_label

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.parametrize("name", ["mini", "paper_brats", "paper_pancreas", "cpu_brats"])
def test_shipped_experiments_load(name: str) -> None:
    config = load_experiment(EXPERIMENTS / f"{name}.yaml")
    assert config.name == name
    assert "sar" in config.pretraining.methods and "sar" in config.finetuning.inits
    assert config.toy_run == (name == "mini")


def test_paper_protocols_match_the_paper() -> None:
    brats = load_experiment(EXPERIMENTS / "paper_brats.yaml")
    pancreas = load_experiment(EXPERIMENTS / "paper_pancreas.yaml")
    assert len(brats.pretraining.methods) == 12 and len(brats.finetuning.inits) == 13
    root = Path("/data")
    trial = brats.finetune_config("sar", 1.0, root, root / "sar.sarmodel", root / "cache")
    assert trial.trials == 5 and trial.test_ratio == pytest.approx(1 / 3)
    assert trial.preset == "brats" and trial.sequences == ("flair",) and trial.lr == 1e-3
    fold = pancreas.finetune_config("scratch", 0.2, root, None, root / "cache")
    assert fold.folds == 5 and fold.preset == "pancreas" and len(fold.classes) == 2
    assert fold.label_fraction == 0.2 and fold.data == "/data/Task07_Pancreas"


def test_runs_put_full_data_first_and_fractions_only_where_asked() -> None:
    config = load_experiment(EXPERIMENTS / "paper_brats.yaml")
    runs = config.finetuning.runs()
    assert runs[:13] == [(init, 1.0) for init in config.finetuning.inits]
    assert runs[13:15] == [("scratch", 0.5), ("sar", 0.5)]
    assert len(runs) == 13 + 2 * 5


def test_scratch_gets_the_pretraining_width(tmp_path: Path) -> None:
    config = load_experiment(EXPERIMENTS / "mini.yaml")
    scratch = config.finetune_config("scratch", 1.0, tmp_path, None, tmp_path)
    pretrained = config.finetune_config("sar", 1.0, tmp_path, tmp_path / "m.sarmodel", tmp_path)
    assert scratch.width_divisor == 8 == config.pretraining.options["width_divisor"]
    assert pretrained.width_divisor == 0  # a pre-trained model keeps its own width


def test_fraction_labels_name_folders() -> None:
    assert [fraction_label(f) for f in (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.3)] == \
        ["all", "1_2", "1_5", "1_10", "1_20", "1_50", "0.3"]
