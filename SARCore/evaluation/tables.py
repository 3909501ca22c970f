"""Paper-style tables as Markdown and CSV text.

* Table 2: methods x (label group, size bucket), ``mean ± std`` of Dice in percent (or
  HD95 in mm), plus the size thresholds used;
* t-tests: p-values of each method against a reference method, per column;
* Table 4: methods x label fractions (1/2, 1/5, 1/10, 1/20, 1/50), mean Dice in percent,
  one block of columns per task;
* the per-case scores behind them (``scores.csv``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

from SARCore.evaluation.metrics import CaseScore
from SARCore.evaluation.stats import Column, Summary, TTest, mean_std

#: ``{task: {method: {label fraction: [Dice per trial, 0..1]}}}``
DataEfficiency = Mapping[str, Mapping[str, Mapping[float, Sequence[float]]]]


def _header(summary: Summary) -> list[str]:
    bucketed = {label for label, bucket in summary.columns if bucket != "all"}
    return [f"{label}_{bucket}" if label in bucketed else label
            for label, bucket in summary.columns]


def _scale(metric: str) -> float:
    return 100.0 if metric == "dice" else 1.0


def _number(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def table2_markdown(summary: Summary) -> str:
    """Table 2 layout: one row per method, ``mean ± std`` per column, notes below."""
    scale = _scale(summary.metric)
    rows = [[method] + [f"{_number(c.mean * scale)} ± {_number(c.std * scale)}"
                        for c in cells.values()] for method, cells in summary.rows.items()]
    unit = "Dice, %" if summary.metric == "dice" else "HD95, mm" if summary.metric == "hd95" \
        else summary.metric
    text = _markdown([f"Method ({unit})", *_header(summary)], rows)
    overs = {c.over for cells in summary.rows.values() for c in cells.values()}
    text += f"\nmean ± sample standard deviation over {' / '.join(sorted(overs))}.\n"
    if summary.thresholds is not None:
        low, high = summary.thresholds
        text += (f"Size buckets by ground-truth volume: S <= {low:.2f} mL < M <= {high:.2f} mL"
                 " < L.\n")
    return text


def table2_csv(summary: Summary) -> str:
    rows = [[method, label, bucket, c.mean, c.std, c.n, c.over]
            for method, cells in summary.rows.items() for (label, bucket), c in cells.items()]
    return _csv(["method", "label", "bucket", f"{summary.metric}_mean",
                 f"{summary.metric}_std", "n", "over"], rows)


def ttest_markdown(summary: Summary, tests: Mapping[str, Mapping[Column, TTest | None]],
                   reference: str) -> str:
    """p-values of each method against ``reference`` (independent two-sample t-test)."""
    rows = [[f"{method} vs {reference}"] + [_number(t.pvalue, 4) if t else "n/a"
                                            for t in row.values()]
            for method, row in tests.items()]
    kinds = {t.welch for row in tests.values() for t in row.values() if t}
    kind = "Welch's" if kinds == {True} else "Student's (pooled variance)"
    return _markdown(["p-value", *_header(summary)], rows) + f"\n{kind} t-test.\n"


def ttest_csv(tests: Mapping[str, Mapping[Column, TTest | None]], reference: str) -> str:
    rows = [[method, reference, label, bucket, t.statistic if t else "", t.pvalue if t else "",
             t.df if t else "", t.welch if t else ""]
            for method, row in tests.items() for (label, bucket), t in row.items()]
    return _csv(["method", "reference", "label", "bucket", "t", "p", "df", "welch"], rows)


def fraction_name(fraction: float) -> str:
    """``0.2`` -> ``"1/5"``; ``1.0`` -> ``"1"``."""
    value = Fraction(fraction).limit_denominator(1000)
    return str(value.numerator) if value.denominator == 1 else \
        f"{value.numerator}/{value.denominator}"


def _fractions(methods: Mapping[str, Mapping[float, Sequence[float]]]) -> list[float]:
    return sorted({f for by_fraction in methods.values() for f in by_fraction}, reverse=True)


def table4_markdown(results: DataEfficiency) -> str:
    """Table 4 layout: rows methods, columns ``<task> <fraction>``, mean Dice in percent."""
    header, blocks = ["Proportion"], []
    for task, methods in results.items():
        fractions = _fractions(methods)
        header += [f"{task} {fraction_name(f)}" for f in fractions]
        blocks.append((methods, fractions))
    names = list(dict.fromkeys(m for methods, _ in blocks for m in methods))
    rows = []
    for method in names:
        row = [method]
        for methods, fractions in blocks:
            values = methods.get(method, {})
            row += [_number(mean_std(values[f])[0] * 100) if f in values else "n/a"
                    for f in fractions]
        rows.append(row)
    return _markdown(header, rows) + "\nmean Dice (%) over trials at each label fraction.\n"


def table4_csv(results: DataEfficiency) -> str:
    rows = []
    for task, methods in results.items():
        for method, by_fraction in methods.items():
            for fraction in sorted(by_fraction, reverse=True):
                mean, std = mean_std(by_fraction[fraction])
                rows.append([task, method, fraction_name(fraction), fraction, mean, std,
                             len(by_fraction[fraction])])
    return _csv(["task", "method", "proportion", "fraction", "dice_mean", "dice_std", "n"], rows)


def scores_csv(scores_by_method_trial: Mapping[str, Mapping[str, Sequence[CaseScore]]],
               buckets: Mapping[str, str] | None = None) -> str:
    """Every per-case score, one line per (method, trial, case, label group)."""
    rows = [[method, trial, s.case, s.label, s.dice, s.hd95, s.truth_ml, s.pred_ml,
             (buckets or {}).get(s.case, "")]
            for method, trials in scores_by_method_trial.items()
            for trial, scores in trials.items() for s in scores]
    return _csv(["method", "trial", "case", "label", "dice", "hd95_mm", "truth_ml", "pred_ml",
                 "size"], rows)
