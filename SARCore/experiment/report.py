"""``<out>/report.md``: what an experiment ran, on what, how long it took, and its results.

The report is the first thing a newcomer opens, so it says plainly what the numbers are
(a toy run's numbers measure nothing but that the pipeline works) and links every figure
and file it is built from. It is rewritten from the stage markers on every run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from SARCore.atomic import write_text_atomic
from SARCore.evaluation.tables import fraction_name
from SARCore.experiment.config import ExperimentConfig
from SARCore.experiment.evaluation import display_name
from SARCore.experiment.stages import StageBook

#: The paper's Table 2 (Dice %, mean over 5 trials/folds on full data and full width).
PAPER_TABLE2 = (("Scratch", "74.35", "65.41", "73.42", "25.19"),
                ("Genesis", "83.03", "74.36", "74.17", "33.12"),
                ("SAR", "84.92", "78.10", "75.68", "33.92"))

TOY_NOTE = ("> **Toy run.** These numbers come from a deliberately tiny run (few cubes, a few "
            "optimizer steps, a narrow network, coarse voxels, a handful of cases) that "
            "checks the whole pipeline end to end on a CPU in minutes. They say nothing about "
            "how well SAR or any other method segments tumors; differences between rows are "
            "noise. For real numbers run `experiments/paper_brats.yaml` or "
            "`experiments/paper_pancreas.yaml` on the public datasets with a GPU.")


def _rel(path: str | Path, out: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(out.resolve()))
    except ValueError:
        return str(path)


def _read(out: Path, name: str) -> str | None:
    path = out / "evaluation" / name
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def _stages(book: StageBook) -> list[str]:
    lines = ["| stage | seconds | this run |", "|---|---:|---|"]
    timings = book.timings()
    for key, seconds in timings.items():
        state = "ran" if key in book.ran else "done earlier (skipped)"
        lines.append(f"| {key} | {seconds:.1f} | {state} |")
    lines.append(f"| **total** | **{sum(timings.values()):.1f}** | |")
    return lines


def _data(config: ExperimentConfig, book: StageBook, runs: Mapping[str, Any]) -> list[str]:
    lines = ["## Data", ""]
    for index, source in enumerate(config.pretraining.data):
        marker = next((book.read(p.stem) for p in sorted(book.folder.glob(f"preprocess-{index}-*"
                                                                          ".json"))), None)
        count = marker["outputs"]["cases"] if marker else "?"
        failed = len(marker["outputs"]["failed"]) if marker else 0
        lines.append(f"* unlabeled `{source.path}` (preset `{source.preset}`): {count} "
                     f"volume(s)" + (f", {failed} skipped as unusable" if failed else ""))
    cubes = book.read("cubes")
    if cubes:
        out = cubes["outputs"]
        lines.append(f"* {out['count']} pre-training cubes from {out['cases']} volumes; per "
                     f"scale (0 large, 1 medium, 2 small): {out['per_scale']}; per modality "
                     f"(0 CT, 1 MRI): {out['per_modality']}")
    settings = config.finetuning.settings
    first = next(iter(runs.values()), None)
    if first:
        split = first["splits"][0]
        n_cases = len(split["train"]) + len(split["validation"]) + len(split["test"])
        protocol = (f"{settings['folds']}-fold cross-validation" if settings.get("folds")
                    else f"{settings.get('trials', 1)} random train/test split(s) (test share "
                    f"{settings.get('test_ratio', 1 / 3):.2f})")
        lines.append(f"* labeled `{settings['data']}`: {n_cases} cases, classes "
                     f"`{settings.get('labels', 'tumor:>0')}`, {protocol}; label fractions "
                     f"{', '.join(fraction_name(f) for f in config.finetuning.label_fractions)}")
    return lines + [""]


def _pretraining(pretrained: Mapping[str, Any], out: Path) -> list[str]:
    if not pretrained:
        return []
    lines = ["## Pre-training", "", "| method | steps | epochs | best validation loss |",
             "|---|---:|---:|---:|"]
    for method, info in pretrained.items():
        lines.append(f"| {display_name(method)} | {info['steps']} | {info['epochs']} | "
                     f"{info['best_val']:.4f} |")
    lines.append("")
    for method, info in pretrained.items():
        png = Path(info["folder"]) / "loss_curves.png"
        if png.is_file():
            lines.append(f"![{method} pre-training losses]({_rel(png, out)})")
    return lines + [""]


def _finetuning(runs: Mapping[str, Any]) -> list[str]:
    lines = ["## Fine-tuning", "", "| init | label fraction | trial/fold | steps | epochs | "
             "best validation Dice loss | test cases |", "|---|---|---|---:|---:|---:|---|"]
    for key, run in runs.items():
        prefix = f"seed{run['seed']}/" if "-seed" in key else ""
        for split in run["splits"]:
            lines.append(f"| {display_name(run['init'])} | {fraction_name(run['fraction'])} | "
                         f"{prefix}{split['name']} | {split['steps']} | {split['epochs']} | "
                         f"{split['best_val_loss']:.4f} | {', '.join(split['test'])} |")
    return lines + [""]


def _results(evaluation: Mapping[str, Any], out: Path) -> list[str]:
    lines = ["## Results", ""]
    study = _read(out, "study.md")
    if study:
        lines = [study, ""] + lines
    for title, name in (("Dice (%) on the held-apart test cases, like the paper's Table 2",
                         "table2.md"), ("HD95 (mm)", "table2_hd95.md"),
                        (f"t-tests against {evaluation['reference']}", "ttest.md"),
                        ("Dice (%) by label fraction, like the paper's Table 4", "table4.md")):
        text = _read(out, name)
        if text:
            lines += [f"### {title}", "", text, ""]
    for png, caption in (("finetune_loss_curves.png", "Fine-tuning loss per initialisation "
                          "(cf. the paper's Fig. 3)"),
                         ("dice_vs_fraction.png", "Dice against the labeled fraction")):
        if (out / "evaluation" / png).is_file():
            lines += [f"![{caption}](evaluation/{png})", "", f"*{caption}.*", ""]
    return lines


def _paper() -> list[str]:
    lines = ["## The paper's numbers, for orientation", "",
             "Table 2 of the paper (Dice %, BraTS 2018 and MSD pancreas, full width, full "
             "data, GPUs):", "", "| method | BraTS all | BraTS small | Pancreas organ | "
             "Pancreas tumor |", "|---|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in PAPER_TABLE2]
    return lines + [""]


def write_report(config: ExperimentConfig, out: Path, pretrained: Mapping[str, Any],
                 runs: Mapping[str, Any], evaluation: Mapping[str, Any],
                 book: StageBook) -> Path:
    """Write ``<out>/report.md`` and return its path."""
    lines = [f"# Experiment `{config.name}`", ""]
    if config.toy_run:
        lines += [TOY_NOTE, ""]
    if config.description:
        lines += [config.description.strip(), ""]
    lines += _data(config, book, runs)
    lines += ["## Stages and time", ""] + _stages(book) + [""]
    lines += _pretraining(pretrained, out) + _finetuning(runs) + _results(evaluation, out)
    lines += _paper()
    lines += ["## Files", "", "* `stages/*.json`: one marker per finished stage (settings, "
              "outputs, seconds); delete a stage's folder and marker to redo it",
              "* `pretraining/<method>/model.sarmodel`: pre-trained models",
              "* `finetuning/<init>/<fraction>/<trial>/model.sarmodel`: fine-tuned models, "
              "with `split.json` (the test cases), `metrics.csv`, `loss_curves.png`, "
              "`predictions/`",
              "* `evaluation/`: `scores.csv` (every case), tables as Markdown and CSV, "
              "`summary.json`, figures", ""]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(lines))
    return path
