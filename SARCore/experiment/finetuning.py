"""Experiment stages after pre-training: fine-tune each (init, label fraction) pair.

All runs share one cache of preprocessed labeled volumes, so the labeled data are
preprocessed once for every initialisation and fraction. The labeled cases must not be
among the pre-training scans (the paper keeps test images away from pre-training); a
file found in both is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from SARCore.errors import ConfigError
from SARCore.experiment.config import ExperimentConfig, fraction_label
from SARCore.experiment.stages import StageBook
from SARCore.finetune import finetune
from SARCore.finetune.data import find_labeled_cases
from SARCore.progress import Reporter


def run_key(init: str, fraction: float, seed: int | None = None) -> str:
    """``sar-all``; with several fine-tuning seeds ``sar-all-seed1``."""
    key = f"{init}-{fraction_label(fraction)}"
    return key if seed is None else f"{key}-seed{seed}"


def check_disjoint(config: ExperimentConfig, data_root: Path, pretrained_inputs: list[str],
                   ) -> None:
    """Refuse labeled cases whose image files were also pre-training scans."""
    probe = config.finetune_config("scratch", 1.0, data_root, None, Path("."))
    cases = find_labeled_cases(probe.data, probe.sequences, probe.modality or None,
                               probe.allow_outside_paths)
    labeled = {str(Path(p).resolve()) for c in cases for source in c.channels for p in source}
    overlap = sorted(labeled & {str(Path(p).resolve()) for p in pretrained_inputs})
    if overlap:
        raise ConfigError(f"{len(overlap)} labeled image(s) are also pre-training scans, "
                          f"e.g. {overlap[0]}", probe.data,
                          "remove them from pretraining.data: test images must stay unseen")


def run_finetuning(config: ExperimentConfig, data_root: Path, out: Path,
                   pretrained: dict[str, dict[str, Any]], book: StageBook,
                   reporter: Reporter) -> dict[str, dict[str, Any]]:
    """Fine-tuning outputs per run key (``init-fraction``), in report order."""
    cache = out / "finetuning" / "cache"
    seeds = config.seeds
    runs = {}
    for init, fraction in config.finetuning.runs():
        for seed in seeds:
            several = len(seeds) > 1
            key = run_key(init, fraction, seed if several else None)
            folder = out / "finetuning" / init / fraction_label(fraction)
            folder = folder / f"seed_{seed}" if several else folder
            done = _finetune_one(config, data_root, init, fraction, seed if several else None,
                                 pretrained, cache, folder, key, book, reporter)
            runs[key] = {**done, "init": init, "fraction": fraction, "seed": seed}
    return runs


def _finetune_one(config: ExperimentConfig, data_root: Path, init: str, fraction: float,
                  seed: int | None, pretrained: dict[str, dict[str, Any]], cache: Path,
                  folder: Path, key: str, book: StageBook, reporter: Reporter
                  ) -> dict[str, Any]:
    model = Path(pretrained[init]["model"]) if init != "scratch" else None
    ft_config = config.finetune_config(init, fraction, data_root, model, cache, seed)

    def work() -> dict[str, Any]:
        result = finetune(ft_config, folder, resume=True, reporter=reporter)
        return {"folder": str(folder), "model": result.model_path,
                "splits": [vars(s) for s in result.splits], "test_cases": result.test_cases}

    settings = {"finetuning": dict(config.finetuning.settings), "init": init,
                "fraction": fraction, "seed": ft_config.seed,
                "pretrained": pretrained[init]["fingerprint"] if model else "scratch"}
    return book.run(f"finetune-{key}", settings, work, folder)
