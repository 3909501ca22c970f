"""Experiment stages before fine-tuning: preprocess unlabeled scans, crop cubes, pre-train.

Each stage calls the package's own API (``preprocess_cases``, ``build_cubes``,
``pretrain``), each of which is resumable on its own, so a killed experiment continues
inside a stage too: preprocessing skips finished cases, pre-training resumes from its
last checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from SARCore.cubes import CubeConfig, build_cubes
from SARCore.errors import DataError
from SARCore.experiment.config import ExperimentConfig, UnlabeledSource, resolve
from SARCore.experiment.stages import StageBook
from SARCore.io.discovery import discover_cases
from SARCore.preprocess import get_preset, preprocess_cases
from SARCore.pretrain.config import config_from_mapping
from SARCore.pretrain.runner import pretrain
from SARCore.progress import Reporter
from SARCore.training.checkpoint import CHECKPOINT_NAME


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "data"


def _preprocess_source(source: UnlabeledSource, index: int, config: ExperimentConfig,
                       data_root: Path, out: Path, reporter: Reporter) -> dict[str, Any]:
    path = resolve(data_root, source.path)
    folder = out / "pretraining" / "preprocessed" / f"{index}_{_slug(source.path)}"
    spacing = tuple(config.pretraining.spacing) or None
    preset = get_preset(source.preset, target_spacing=spacing)
    cases = discover_cases([path], sequence=source.sequence, modality=source.modality or None)
    report = preprocess_cases(cases, folder, preset, reporter)
    for failure in report.failed:
        reporter.log(f"unlabeled case skipped: {failure.case_id}: {failure.reason}")
    if not report.done and not report.skipped:
        raise DataError("no unlabeled scan could be preprocessed", path, report.summary())
    return {"folder": str(folder), "cases": len(report.done) + len(report.skipped),
            "failed": [{"case": f.case_id, "reason": f.reason} for f in report.failed],
            "preset": preset.to_dict()}


def run_pretraining(config: ExperimentConfig, data_root: Path, out: Path, book: StageBook,
                    reporter: Reporter) -> dict[str, dict[str, Any]]:
    """Pre-trained model outputs per method (``{"model": path, ...}``)."""
    plan = config.pretraining
    if not plan.methods:
        return {}
    folders, stamps = [], []
    for index, source in enumerate(plan.data):
        settings = {"source": vars(source), "spacing": list(plan.spacing)}
        done = book.run(f"preprocess-{index}-{_slug(source.path)}", settings,
                        lambda s=source, i=index: _preprocess_source(s, i, config, data_root,
                                                                     out, reporter))
        folders.append(done["folder"])
        stamps.append(done["fingerprint"])
    cube_config = CubeConfig.from_dict({"seed": config.seed, **dict(plan.cubes)})
    cubes_dir = out / "pretraining" / "cubes"

    def make_cubes() -> dict[str, Any]:
        info = build_cubes(folders, cubes_dir, cube_config, reporter)
        return {"folder": str(cubes_dir), "count": info.count, "per_scale": info.per_scale,
                "per_modality": info.per_modality, "cases": len(info.cases)}

    cubes = book.run("cubes", {"inputs": stamps, "cubes": cube_config.to_dict()}, make_cubes)
    return {method: _pretrain_method(method, config, cubes, out, book, reporter)
            for method in plan.methods}


def _pretrain_method(method: str, config: ExperimentConfig, cubes: dict[str, Any], out: Path,
                     book: StageBook, reporter: Reporter) -> dict[str, Any]:
    options = {"seed": config.seed, "device": config.device,
               "name": f"{config.name}-{method}", **dict(config.pretraining.options)}
    pretrain_config = config_from_mapping(options, "pretraining.options", {"method": method})
    folder = out / "pretraining" / method

    def work() -> dict[str, Any]:
        resume = (folder / CHECKPOINT_NAME).is_file()
        result = pretrain(pretrain_config, cubes["folder"], folder, resume=resume,
                          reporter=reporter)
        return {"model": str(result.model_path), "folder": str(folder),
                "best_val": result.best_val, "best_epoch": result.best_epoch,
                "epochs": result.epochs_run, "steps": result.global_step}

    settings = {"cubes": cubes["fingerprint"], "config": pretrain_config.to_dict()}
    settings["config"]["loop"].pop("device", None)  # where it ran does not change what it is
    return book.run(f"pretrain-{method}", settings, work, folder)
