"""Score runs and write the paper-style report files into one folder.

``evaluate_runs`` scores each run (trial/fold) of a prediction folder;
``write_report`` writes ``scores.csv``, ``table2.md/.csv`` (Dice), ``table2_hd95.md/.csv``
and, with two or more methods, ``ttest.md/.csv`` against the reference method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from SARCore.atomic import write_text_atomic
from SARCore.evaluation.folders import evaluate_predictions, prediction_runs, truth_files
from SARCore.evaluation.metrics import CaseScore, LabelGroup, assign_buckets
from SARCore.evaluation.stats import Summary, summarize, ttest_rows
from SARCore.evaluation.tables import (
    scores_csv,
    table2_csv,
    table2_markdown,
    ttest_csv,
    ttest_markdown,
)
from SARCore.progress import NullReporter, Reporter


def evaluate_runs(pred_dir: str | Path, truth_dir: str | Path,
                  labels: Sequence[LabelGroup | int | str] | None = None,
                  reporter: Reporter | None = None, allow_outside: bool = False,
                  ) -> dict[str, list[CaseScore]]:
    """``{run: scores}`` for ``pred_dir`` itself or each of its run sub-folders
    (``allow_outside``: a ``dataset.json`` may name files outside its folder)."""
    reporter = reporter or NullReporter()
    truth = truth_files(truth_dir, allow_outside)
    runs = prediction_runs(pred_dir)
    result = {}
    for step, (run, files) in enumerate(runs.items()):
        reporter.progress(step, len(runs), f"{run} ({len(files)} cases)", stage="evaluate")
        result[run] = evaluate_predictions(files, truth, labels)
    reporter.progress(len(runs), len(runs), "done", stage="evaluate")
    return result


#: Fewer cases than this get no S/M/L columns unless thresholds are given.
MIN_BUCKET_CASES = 3


@dataclass
class Report:
    """What :func:`write_report` computed and where it wrote it."""

    dice: Summary
    hd95: Summary
    buckets: dict[str, str]
    thresholds: tuple[float, float] | None
    files: list[Path]


def write_report(out_dir: str | Path, scores: Mapping[str, Mapping[str, Sequence[CaseScore]]],
                 size_label: str | None = None,
                 thresholds: tuple[float, float] | None = None,
                 reference: str | None = None, welch: bool = False) -> Report:
    """Summaries of ``{method: {trial: scores}}`` written as Markdown and CSV.

    ``size_label``: the group split into S/M/L by truth volume (default ``whole`` if
    present, else the first group); ``thresholds`` in mL (default: terciles);
    ``reference``: the method the others are t-tested against (default: the first).
    """
    out = Path(out_dir)
    every = [s for trials in scores.values() for run in trials.values() for s in run]
    labels = list(dict.fromkeys(s.label for s in every))
    size_label = size_label or ("whole" if "whole" in labels else labels[0])
    cases = {s.case for s in every if s.label == size_label}
    if thresholds is None and len(cases) < MIN_BUCKET_CASES:
        buckets, thresholds = {}, None  # terciles of 1 or 2 cases are not sizes
    else:
        buckets, thresholds = assign_buckets(every, size_label, thresholds)
    dice = summarize(scores, buckets, "dice", size_label, thresholds)
    hd95 = summarize(scores, buckets, "hd95", size_label, thresholds)
    texts = {"scores.csv": scores_csv(scores, buckets),
             "table2.md": table2_markdown(dice), "table2.csv": table2_csv(dice),
             "table2_hd95.md": table2_markdown(hd95), "table2_hd95.csv": table2_csv(hd95)}
    if not buckets:
        note = (f"Size buckets S/M/L: n/a ({len(cases)} case(s); terciles need at least "
                f"{MIN_BUCKET_CASES}, or give --size-thresholds).\n")
        texts["table2.md"] += note
        texts["table2_hd95.md"] += note
    if len(scores) > 1:
        reference = reference or next(iter(scores))
        tests = ttest_rows(dice, reference, welch)
        texts["ttest.md"] = ttest_markdown(dice, tests, reference)
        texts["ttest.csv"] = ttest_csv(tests, reference)
    files = []
    for name, text in texts.items():
        write_text_atomic(out / name, text)
        files.append(out / name)
    return Report(dice, hd95, buckets, thresholds, files)
