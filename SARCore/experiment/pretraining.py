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
from SARCore.cubes.generator import cube_counts_text
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
    cases = discover_cases([path], sequence=source.sequence, modality=source.modality or None,
                           allow_outside=source.allow_outside_paths)
    cases = [c for c in cases if source.keeps(c.source)]
    if not cases:
        raise DataError(f"no scan under subset folders {list(source.subsets)}", path,
                        "LUNA16 keeps its scans in subset0 ... subset9 folders")
    report = preprocess_cases(cases, folder, preset, reporter)
    for failure in report.failed:
        reporter.log(f"unlabeled case skipped: {failure.case_id}: {failure.reason}")
    if not report.done and not report.skipped:
        raise DataError("no unlabeled scan could be preprocessed", path, report.summary())
    return {"folder": str(folder), "cases": len(report.done) + len(report.skipped),
            "failed": [{"case": f.case_id, "reason": f.reason} for f in report.failed],
            "preset": preset.to_dict()}


def source_settings(source: UnlabeledSource) -> dict[str, Any]:
    """What decides a source's preprocessing stage (its fingerprint). Options that cannot
    change the outputs are left out (``per_volume`` acts at the cube stage;
    ``allow_outside_paths`` only permits reading), and so are fields at their "off" value
    that older versions did not record, so an experiment finished before an upgrade is
    still recognised as done."""
    return {k: v for k, v in vars(source).items()
            if k not in ("per_volume", "allow_outside_paths")
            and not (k == "subsets" and not v)}


def run_pretraining(config: ExperimentConfig, data_root: Path, out: Path, book: StageBook,
                    reporter: Reporter) -> dict[str, dict[str, Any]]:
    """Pre-trained model outputs per method (``{"model": path, ...}``)."""
    plan = config.pretraining
    if not plan.methods:
        return {}
    folders, stamps = [], []
    for index, source in enumerate(plan.data):
        settings = {"source": source_settings(source), "spacing": list(plan.spacing)}
        done = book.run(f"preprocess-{index}-{_slug(source.path)}", settings,
                        lambda s=source, i=index: _preprocess_source(s, i, config, data_root,
                                                                     out, reporter))
        folders.append(done["folder"])
        stamps.append(done["fingerprint"])
    per_volume = [list(s.per_volume) or None for s in plan.data]
    stores: dict[str, dict[str, Any]] = {}
    results = {}
    for name in plan.methods:
        _, _, own_cubes = plan.run_options(name)
        key = f"cubes-{name}" if own_cubes else "cubes"
        if key not in stores:
            # A variant's own per_volume wins over the entries' (e.g. genesis-mg).
            counts = [None] * len(folders) if "per_volume" in own_cubes else per_volume
            stores[key] = _cube_store(key, {**dict(plan.cubes), **own_cubes}, folders, stamps,
                                      counts, config, out, book, reporter)
        results[name] = _pretrain_method(name, config, stores[key], out, book, reporter)
    return results


def _cube_store(key: str, options: dict[str, Any], folders: list[str], stamps: list[str],
                per_volume: list[list[int] | None], config: ExperimentConfig, out: Path,
                book: StageBook, reporter: Reporter) -> dict[str, Any]:
    """One cube store (``cubes``, or a variant's own ``cubes-<name>``), built once."""
    cube_config = CubeConfig.from_dict({"seed": config.seed, **options})
    cubes_dir = out / "pretraining" / key.replace("-", "_", 1)

    def make_cubes() -> dict[str, Any]:
        info = build_cubes(folders, cubes_dir, cube_config, reporter, per_volume)
        reporter.log(f"{key}: {info.count} cubes; "
                     f"{cube_counts_text(info.per_scale, info.per_modality)}")
        return {"folder": str(cubes_dir), "count": info.count, "per_scale": info.per_scale,
                "per_modality": info.per_modality, "cases": len(info.cases)}

    settings: dict[str, Any] = {"inputs": stamps, "cubes": cube_config.to_dict()}
    if any(per_volume):
        settings["per_volume"] = per_volume
    return book.run(key, settings, make_cubes)


def _pretrain_method(name: str, config: ExperimentConfig, cubes: dict[str, Any], out: Path,
                     book: StageBook, reporter: Reporter) -> dict[str, Any]:
    method, own, _ = config.pretraining.run_options(name)
    options = {"seed": config.seed, "device": config.device,
               "name": f"{config.name}-{name}", **own}
    pretrain_config = config_from_mapping(options, f"pretraining ({name})", {"method": method})
    folder = out / "pretraining" / name

    def work() -> dict[str, Any]:
        resume = (folder / CHECKPOINT_NAME).is_file()
        result = pretrain(pretrain_config, cubes["folder"], folder, resume=resume,
                          reporter=reporter)
        return {"model": str(result.model_path), "folder": str(folder),
                "best_val": result.best_val, "best_epoch": result.best_epoch,
                "epochs": result.epochs_run, "steps": result.global_step}

    settings = {"cubes": cubes["fingerprint"], "config": pretrain_config.to_dict()}
    settings["config"]["loop"].pop("device", None)  # where it ran does not change what it is
    return book.run(f"pretrain-{name}", settings, work, folder)
