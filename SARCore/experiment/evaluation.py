"""Experiment stages after fine-tuning: segment the held-apart test cases, then score them.

Segmentation uses the inference package's :class:`~SARCore.inference.Segmenter` on each
trial's/fold's own model, so every test case is predicted by a model that never saw it.
The ground truth is mapped to the model's classes once (``<out>/evaluation/truth/``) on
the scan's own grid, and predictions come back on that grid, so Dice and HD95 are
measured in the original voxels. Tables, t-tests and figures come from
:mod:`SARCore.evaluation`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from SARCore.atomic import write_json_atomic, write_text_atomic
from SARCore.config import from_mapping
from SARCore.evaluation import (
    CaseScore,
    LabelGroup,
    evaluate_predictions,
    plot_data_efficiency,
    plot_loss_curves,
    table4_csv,
    table4_markdown,
    write_report,
)
from SARCore.experiment.config import ExperimentConfig
from SARCore.experiment.stages import StageBook
from SARCore.finetune.labels import ClassSpec, map_labels
from SARCore.inference import Segmenter, SegmentOptions, load_segmentation_model
from SARCore.io.readers import read_image, read_label
from SARCore.io.writers import write_image
from SARCore.progress import Reporter

#: Row names of the paper's Table 2 for each initialisation.
DISPLAY = {"scratch": "Scratch", "genesis": "Genesis", "rpl": "3D-RPL", "jigsaw": "3D-Jig",
           "rotation": "3D-Rot", "cpc": "3D-CPC", "mial": "+ MIAL", "sa": "+ SA", "sar": "SAR"}


def display_name(init: str) -> str:
    return DISPLAY.get(init, init)


def _classes(config: ExperimentConfig) -> tuple[ClassSpec, ...]:
    probe = config.finetune_config("scratch", 1.0, Path("."), None, Path("."))
    return probe.classes


def _truth_file(case: Mapping[str, Any], classes: Sequence[ClassSpec], folder: Path) -> Path:
    """The case's label mapped to output classes, on its own grid (written once)."""
    path = folder / f"{case['case_id']}_label.nii.gz"
    if not path.is_file():
        label = read_label(case["label"])
        mapped = sitk.GetImageFromArray(map_labels(sitk.GetArrayFromImage(label), classes))
        mapped.CopyInformation(label)
        write_image(mapped, path)
    return path


def _segment_split(split: Mapping[str, Any], cases: Mapping[str, Any], folder: Path,
                   options: SegmentOptions, reporter: Reporter) -> dict[str, str]:
    predictions, segmenter = {}, None
    out = folder / split["name"] / "predictions"
    for case_id in split["test"]:
        path = out / f"{case_id}_label.nii.gz"
        if not path.is_file():
            segmenter = segmenter or Segmenter(load_segmentation_model(split["model_path"]),
                                               options)
            images = [read_image(p) for p in cases[case_id]["images"]]
            write_image(segmenter.segment(images), path)
            reporter.log(f"segmented {case_id} with {split['name']} -> {path}")
        predictions[case_id] = str(path)
    return predictions


def run_segmentation(config: ExperimentConfig, runs: Mapping[str, dict[str, Any]],
                     book: StageBook, reporter: Reporter) -> dict[str, dict[str, dict[str, str]]]:
    """``{run key: {split: {case: prediction file}}}`` for every test case of every run."""
    options = from_mapping(SegmentOptions, {"device": config.device,
                                            **dict(config.segmentation)}, "segmentation")
    predictions = {}
    for key, run in runs.items():
        folder = Path(run["folder"])

        def work(run: dict[str, Any] = run, folder: Path = folder) -> dict[str, Any]:
            return {"predictions": {s["name"]: _segment_split(s, run["test_cases"], folder,
                                                               options, reporter)
                                    for s in run["splits"]}}

        settings = {"finetune": run["fingerprint"], "segmentation": dict(config.segmentation)}
        done = book.run(f"segment-{key}", settings, work, folder)
        predictions[key] = done["predictions"]
    return predictions


def _scores(runs: Mapping[str, dict[str, Any]], predictions: Mapping[str, Any],
            classes: Sequence[ClassSpec], truth_dir: Path) -> dict[str, dict[str, list[CaseScore]]]:
    groups = [LabelGroup(c.name, (c.label,)) for c in classes]
    scores: dict[str, dict[str, list[CaseScore]]] = {}
    for key, run in runs.items():
        truth = {case: str(_truth_file(info, classes, truth_dir))
                 for case, info in run["test_cases"].items()}
        scores[key] = {split: evaluate_predictions({c: Path(p) for c, p in files.items()},
                                                   {c: Path(truth[c]) for c in files}, groups)
                       for split, files in predictions[key].items()}
    return scores


def trial_name(config: ExperimentConfig, run: Mapping[str, Any], split: str) -> str:
    """A split's name in the tables: ``fold_0``, or ``seed1/fold_0`` with several seeds."""
    return f"seed{run['seed']}/{split}" if len(config.seeds) > 1 else split


def merged_scores(config: ExperimentConfig, runs: Mapping[str, dict[str, Any]],
                  scores: Mapping[str, Mapping[str, list[CaseScore]]], fraction: float
                  ) -> dict[str, dict[str, list[CaseScore]]]:
    """``{init display name: {trial: scores}}`` at one label fraction, seeds merged."""
    merged: dict[str, dict[str, list[CaseScore]]] = {}
    for key, run in runs.items():
        if run["fraction"] == fraction:
            merged.setdefault(display_name(run["init"]), {}).update(
                {trial_name(config, run, split): value for split, value in scores[key].items()})
    return merged


def _split_mean(scores: Sequence[CaseScore]) -> float:
    """Mean Dice over a split's test cases and classes (Table 4's "Tumor_all"/"Average")."""
    values = [s.dice for s in scores if not math.isnan(s.dice)]
    return sum(values) / len(values) if values else math.nan


def _evaluate(config: ExperimentConfig, runs: Mapping[str, dict[str, Any]],
              predictions: Mapping[str, Any], out: Path) -> dict[str, Any]:
    classes = _classes(config)
    scores = _scores(runs, predictions, classes, out / "truth")
    full = merged_scores(config, runs, scores, 1.0)
    options = dict(config.evaluation)
    size_label = options.get("size_label") or classes[0].name
    thresholds = tuple(options["size_thresholds"]) if options.get("size_thresholds") else None
    reference = display_name("sar") if display_name("sar") in full else next(iter(full))
    report = write_report(out, full, size_label, thresholds, reference,
                          bool(options.get("welch", False)))
    files = [str(p) for p in report.files]
    curves: dict[str, list[str]] = {}
    for run in runs.values():
        if run["fraction"] == 1.0:
            curves.setdefault(display_name(run["init"]), []).extend(
                str(Path(run["folder"]) / s["name"] / "metrics.csv") for s in run["splits"])
    files.append(str(plot_loss_curves(curves, out / "finetune_loss_curves.png",
                                      "Fine-tuning loss (cf. the paper's Fig. 3)")))
    efficiency: dict[str, dict[float, list[float]]] = {}
    for key, run in runs.items():
        efficiency.setdefault(display_name(run["init"]), {}).setdefault(
            run["fraction"], []).extend(_split_mean(s) for s in scores[key].values())
    if len({r["fraction"] for r in runs.values()}) > 1:
        table = {config.name: efficiency}
        for name, text in (("table4.md", table4_markdown(table)), ("table4.csv", table4_csv(table))):
            write_text_atomic(out / name, text)
            files.append(str(out / name))
        files.append(str(plot_data_efficiency(efficiency, out / "dice_vs_fraction.png")))
    summary = {"reference": reference, "size_label": size_label,
               "thresholds_ml": list(report.thresholds or ()),
               "dice": {m: {f"{label}_{bucket}": {"mean": c.mean, "std": c.std, "n": c.n,
                                                  "over": c.over}
                            for (label, bucket), c in cells.items()}
                        for m, cells in report.dice.rows.items()},
               "efficiency": {m: {str(f): v for f, v in by.items()}
                              for m, by in efficiency.items()},
               "files": files}
    if config.study:
        from SARCore.experiment.study import write_study

        study = write_study(config, runs, scores, out)
        summary["study"] = {k: study[k] for k in ("best", "best_mean_dice", "summary",
                                                  "answer", "model") if k in study}
        files.append(str(out / "study.md"))
    write_json_atomic(out / "summary.json", summary)
    return summary


def run_evaluation(config: ExperimentConfig, runs: Mapping[str, dict[str, Any]],
                   predictions: Mapping[str, Any], out: Path, book: StageBook,
                   reporter: Reporter) -> dict[str, Any]:
    """Tables 2 and 4, t-tests and figures in ``<out>/evaluation/`` (``summary.json``)."""
    folder = out / "evaluation"
    settings = {"segmentations": {k: book.read(f"segment-{k}")["fingerprint"] for k in runs},
                "evaluation": dict(config.evaluation)}
    if config.study:
        settings["study"] = dict(config.study)
    return book.run("evaluate", settings, lambda: _evaluate(config, runs, predictions, folder),
                    folder)
