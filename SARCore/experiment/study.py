"""The study section of an experiment: does the reference init beat the others here?

With ``study:`` in the experiment file, after evaluation this writes
``<out>/evaluation/study.md`` and ``study.json``: per-fold Dice and HD95 of every init and
label fraction (folds x seeds), their mean +- std, paired tests of the reference (SAR)
against each other init over the same test cases, fine-tuning loss curves side by side
per fraction, one plain sentence per comparison generated from those numbers, and
whether the best init reaches ``target_dice``. The best init's selected model (lowest
validation loss over its folds and seeds, at label fraction 1) is copied to
``<out>/<export>`` as a ready ``.sarmodel``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from SARCore.atomic import write_json_atomic, write_text_atomic
from SARCore.evaluation import CaseScore, plot_loss_curves
from SARCore.evaluation.paired import paired_compare, verdict
from SARCore.evaluation.stats import mean_std
from SARCore.evaluation.tables import fraction_name
from SARCore.experiment.config import ExperimentConfig
from SARCore.models.modelfile import load_model_file, save_model_file

Scores = Mapping[str, Mapping[str, list[CaseScore]]]  # run key -> split -> case scores


def _pair_values(config: ExperimentConfig, runs: Mapping[str, dict[str, Any]],
                 scores: Scores, metric: str) -> dict[tuple[str, float], dict[str, float]]:
    """``{(init, fraction): {"seed/fold/case": value}}`` (one label group: the first)."""
    from SARCore.experiment.evaluation import trial_name

    values: dict[tuple[str, float], dict[str, float]] = {}
    for key, run in runs.items():
        cell = values.setdefault((run["init"], run["fraction"]), {})
        for split, case_scores in scores[key].items():
            first = case_scores[0].label if case_scores else None
            for score in case_scores:
                if score.label == first:
                    name = f"{trial_name(config, run, split)}/{score.case}"
                    cell[name] = float(getattr(score, metric))
    return values


def _fmt(value: float, scale: float = 1.0, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value * scale:.{digits}f}"


def _mean_std_text(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    mean, std = mean_std(values)
    return f"{_fmt(mean, scale, digits)} ± {_fmt(std, scale, digits)}"


def _per_fold_table(dice: dict, hd95: dict, inits: list[str], fraction: float) -> list[str]:
    keys = sorted({k for init in inits for k in dice.get((init, fraction), {})})
    head = " | ".join(f"{i} Dice | {i} HD95 (mm)" for i in inits)
    lines = [f"| seed/fold/test case | {head} |", "|---|" + "---:|" * (2 * len(inits))]
    for key in keys:
        cells = " | ".join(f"{_fmt(dice.get((i, fraction), {}).get(key, math.nan))} | "
                           f"{_fmt(hd95.get((i, fraction), {}).get(key, math.nan), digits=1)}"
                           for i in inits)
        lines.append(f"| {key} | {cells} |")
    means = " | ".join(f"**{_mean_std_text(list(dice.get((i, fraction), {}).values()))}** | "
                       f"**{_mean_std_text(list(hd95.get((i, fraction), {}).values()), digits=1)}**"
                       for i in inits)
    lines.append(f"| **mean ± std** | {means} |")
    return lines


def _best_init(dice: dict, inits: list[str]) -> tuple[str, float]:
    means = {i: mean_std(list(dice.get((i, 1.0), {}).values()))[0] for i in inits}
    finite = {i: m for i, m in means.items() if not math.isnan(m)}
    if not finite:
        return inits[0], math.nan
    best = max(finite, key=lambda i: finite[i])
    return best, finite[best]


def export_best_model(config: ExperimentConfig, runs: Mapping[str, dict[str, Any]],
                      init: str, target: Path, mean_dice: float) -> Path:
    """Copy ``init``'s selected model (lowest validation loss, fraction 1) to ``target``."""
    candidates = [(split["best_val_loss"], split["model_path"]) for run in runs.values()
                  if run["init"] == init and run["fraction"] == 1.0 for split in run["splits"]]
    _, path = min(candidates, key=lambda c: (c[0] if not math.isnan(c[0]) else math.inf,
                                             c[1]))
    header, state = load_model_file(path, task="segmentation")
    header = {**header, "name": f"{config.name}-{init}",
              "study": {"experiment": config.name, "init": init, "source": str(path),
                        "mean_test_dice": mean_dice}}
    header.pop("weights_sha256", None)
    return save_model_file(target, state, header)


def write_study(config: ExperimentConfig, runs: Mapping[str, dict[str, Any]], scores: Scores,
                out: Path) -> dict[str, Any]:
    """Write ``study.md``/``study.json`` into ``out`` (the evaluation folder); see above."""
    from SARCore.experiment.evaluation import display_name

    study = dict(config.study)
    reference = study.get("reference", "sar")
    against = list(study.get("against") or [i for i in config.finetuning.inits
                                            if i != reference])
    inits = [reference, *against]
    dice = _pair_values(config, runs, scores, "dice")
    hd95 = _pair_values(config, runs, scores, "hd95")
    fractions = sorted({r["fraction"] for r in runs.values()}, reverse=True)
    lines = ["## Study: what does pre-training buy here?", ""]
    result: dict[str, Any] = {"reference": reference, "fractions": {}}
    sentences = []
    for fraction in fractions:
        here = [i for i in inits if (i, fraction) in dice]
        lines += [f"### Label fraction {fraction_name(fraction)}", ""]
        lines += _per_fold_table(dice, hd95, here, fraction) + [""]
        comparisons = {}
        for other in here[1:]:
            if reference not in here:
                break
            paired = paired_compare(dice[(reference, fraction)], dice[(other, fraction)])
            sentence = verdict(display_name(reference), display_name(other), paired)
            comparisons[other] = {**vars(paired), "sentence": sentence}
            sentences.append(f"At label fraction {fraction_name(fraction)}: {sentence}")
            lines.append(f"* {display_name(reference)} vs {display_name(other)}: {sentence}")
        curves: dict[str, list[str]] = {}
        for run in runs.values():
            if run["fraction"] == fraction:
                curves.setdefault(display_name(run["init"]), []).extend(
                    str(Path(run["folder"]) / s["name"] / "metrics.csv") for s in run["splits"])
        png = out / f"study_loss_curves_{fraction_name(fraction).replace('/', '_')}.png"
        plot_loss_curves(curves, png, f"Fine-tuning loss, label fraction "
                                      f"{fraction_name(fraction)} (cf. the paper's Fig. 3)")
        lines += ["", f"![fine-tuning loss, fraction {fraction_name(fraction)}]"
                      f"(evaluation/{png.name})", ""]
        result["fractions"][str(fraction)] = {
            "dice": {i: dice.get((i, fraction), {}) for i in here},
            "hd95": {i: hd95.get((i, fraction), {}) for i in here},
            "comparisons": comparisons}
    best, best_mean = _best_init(dice, inits)
    target = float(study.get("target_dice", 0.8))
    reached = "reaches" if best_mean >= target else "does not reach"
    summary = (f"Best initialisation at label fraction 1: {display_name(best)}, mean "
               f"whole-tumor Dice {_fmt(best_mean)} over the leave-one-out folds x seeds; it "
               f"{reached} the target of {target:.2f}.")
    lines = lines[:2] + ["**Answer.** " + " ".join([*sentences, summary]), ""] + lines[2:]
    result.update(best=best, best_mean_dice=best_mean, target_dice=target, answer=sentences,
                  summary=summary)
    if study.get("export"):
        path = export_best_model(config, runs, best, out.parent / study["export"], best_mean)
        result["model"] = str(path)
        lines += [f"The best model is `{study['export']}` (`sar segment --model "
                  f"{study['export']} ...`, or load it in the Slicer module).", ""]
    write_text_atomic(out / "study.md", "\n".join(lines))
    write_json_atomic(out / "study.json", result)
    return result
