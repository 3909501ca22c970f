"""``evaluate``: Dice, HD95, tumor-size buckets and t-tests -> paper-style tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from SARCore.cli.options import add_allow_outside_paths, add_out
from SARCore.progress import Reporter

HELP = ("score predicted label maps against ground truth: Dice (1.0 when both empty), HD95 "
        "(mm), S/M/L tumor-size buckets, mean ± std over runs, t-test against --compare")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, metavar="DIR",
                        help="predicted label maps (<case>_label.nii.gz), or sub-folders of "
                             "them, one per trial/fold")
    parser.add_argument("--truth", required=True, metavar="PATH",
                        help="ground truth: one label file, BraTS case folders, an MSD dataset, "
                             "image + <case>_label pairs, or a folder of label files")
    parser.add_argument("--labels", nargs="+", metavar="RULES",
                        help="classes to score, as finetune --labels writes them and applied "
                             "to prediction and truth alike: 'tumor:>0' (BraTS whole tumor), "
                             "'pancreas:1,tumor:2' (older forms 1 2 and whole=1,2,4 still "
                             "work) (default: the classes of --model, else of the "
                             "predictions' <case>.sar.json records or .seg.nrrd segments, else "
                             "each label value found, plus whole)")
    parser.add_argument("--model", metavar="FILE",
                        help="the .sarmodel that made the predictions: its header names the "
                             "classes and their truth values (used when --labels is not given)")
    add_out(parser, "folder for scores.csv, table2.md/.csv, ttest.md/.csv (default: "
                    "<pred>/evaluation)", required=False, metavar="DIR")
    parser.add_argument("--compare", metavar="DIR2",
                        help="a second run's predictions: both in the tables, and a t-test")
    parser.add_argument("--name", help="method name of --pred (default: its folder name)")
    parser.add_argument("--compare-name", help="method name of --compare (default: its folder name)")
    parser.add_argument("--size-label", metavar="NAME",
                        help="label group split into S/M/L by truth volume (default: whole, "
                             "else the first group)")
    parser.add_argument("--size-thresholds", nargs=2, type=float, metavar=("S_MAX", "M_MAX"),
                        help="bucket cut points in mL (default: terciles of the truth volumes)")
    parser.add_argument("--welch", action="store_true",
                        help="Welch's t-test (unequal variances) instead of Student's")
    add_allow_outside_paths(parser)


def _method_names(args: argparse.Namespace) -> list[tuple[str, str]]:
    from SARCore.errors import ConfigError

    runs = [(args.name or Path(args.pred).resolve().name, args.pred)]
    if args.compare:
        runs.append((args.compare_name or Path(args.compare).resolve().name, args.compare))
        if runs[0][0] == runs[1][0]:
            raise ConfigError(f"--pred and --compare are both named {runs[0][0]!r}",
                              hint="give --name and --compare-name")
    return runs


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    from SARCore.evaluation.report import evaluate_runs, write_report

    runs = _method_names(args)
    groups, source = _groups(args, runs)
    reporter.log(f"class names from {source}")
    scores = {name: evaluate_runs(folder, args.truth, groups, reporter,
                                  args.allow_outside_paths)
              for name, folder in runs}
    out = Path(args.out) if args.out else Path(args.pred) / "evaluation"
    thresholds = tuple(args.size_thresholds) if args.size_thresholds else None
    report = write_report(out, scores, args.size_label, thresholds, welch=args.welch)
    # The tables are the verb's result: stdout, so `sar evaluate ... > table.md` works;
    # logs and progress stay on stderr (in JSON mode stdout carries only events).
    tables = [(out / "table2.md").read_text(encoding="utf-8")]
    if (out / "ttest.md").exists():
        tables.append((out / "ttest.md").read_text(encoding="utf-8"))
    if args.progress == "json":  # the tables say the size buckets (or n/a)
        reporter.log("\n".join(tables))
    else:
        print("\n".join(tables), flush=True)
    reporter.done(dice=_cells(report.dice), hd95_mm=_cells(report.hd95), classes_from=source,
                  thresholds_ml=list(report.thresholds or ()),
                  files=[str(p) for p in report.files], out=str(out),
                  wrote=f"{len(report.files)} table and score file(s)")
    return 0


def _groups(args: argparse.Namespace, runs: list[tuple[str, str]]) -> tuple[list | None, str]:
    """The label groups to score and where their names came from (said to the user)."""
    from SARCore.evaluation.classes import named_groups
    from SARCore.evaluation.folders import prediction_runs
    from SARCore.evaluation.metrics import parse_label_option

    if args.labels:
        return parse_label_option(args.labels), "--labels"
    files = [path for _, folder in runs for found in prediction_runs(folder).values()
             for path in found.values()]
    named = named_groups(files, args.model)
    if named is None:
        return None, ("the label values found in the truth (no --labels, --model, "
                      "<case>.sar.json record or .seg.nrrd beside the predictions)")
    return named


def _cells(summary) -> dict:
    """``{method: {"<label>_<bucket>": {"mean", "std", "n"}}}`` for the JSON done event."""
    return {method: {f"{label}_{bucket}": {"mean": cell.mean, "std": cell.std, "n": cell.n}
                     for (label, bucket), cell in cells.items()}
            for method, cells in summary.rows.items()}
