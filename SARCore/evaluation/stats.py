"""Mean +- standard deviation over trials (or folds) and t-tests between methods.

The paper reports "the mean and standard deviation of five trials" and "independent two
sample t-tests between SAR vs. others". Here a trial's score is the mean over its test
cases (per label group and size bucket); the table cell is the mean and the sample
standard deviation (``ddof=1``) of those trial scores, and t-tests compare the trial
scores of two methods. With a single trial there is no spread over trials, so the
spread and the t-test fall back to the per-case scores (the cell says which).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from SARCore.evaluation.metrics import BUCKETS, CaseScore

#: A column of a summary table: (label group, size bucket or "all").
Column = tuple[str, str]
ScoresByMethodTrial = Mapping[str, Mapping[str, Sequence[CaseScore]]]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for one value); NaNs ignored."""
    data = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if data.size == 0:
        return math.nan, math.nan
    return float(data.mean()), (float(data.std(ddof=1)) if data.size > 1 else 0.0)


@dataclass(frozen=True)
class TTest:
    """Result of an independent two-sample t-test."""

    statistic: float
    pvalue: float
    df: float
    welch: bool


def ttest(a: Sequence[float], b: Sequence[float], welch: bool = False) -> TTest:
    """Student's (pooled variance) or, with ``welch``, Welch's t-test of ``a`` vs ``b``."""
    a_ = np.asarray([v for v in a if not math.isnan(v)], dtype=np.float64)
    b_ = np.asarray([v for v in b if not math.isnan(v)], dtype=np.float64)
    if a_.size < 2 or b_.size < 2:
        raise ValueError(f"a t-test needs at least 2 values per group, got {a_.size} and "
                         f"{b_.size}")
    result = scipy_stats.ttest_ind(a_, b_, equal_var=not welch)
    df = getattr(result, "df", None)
    if df is None:
        df = a_.size + b_.size - 2
    return TTest(float(result.statistic), float(result.pvalue), float(df), welch)


@dataclass(frozen=True)
class Cell:
    """One table entry: mean +- std of ``n`` values taken over ``over`` (trials | cases)."""

    mean: float
    std: float
    n: int
    over: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Summary:
    """Rows = methods, columns = (label group, bucket), cells = :class:`Cell` of a metric."""

    metric: str
    columns: tuple[Column, ...]
    rows: dict[str, dict[Column, Cell]]
    thresholds: tuple[float, float] | None


def columns_for(labels: Sequence[str], size_label: str | None) -> tuple[Column, ...]:
    """S, M, L and all for the size-bucketed group, "all" for the others (Table 2 order)."""
    columns: list[Column] = []
    for label in labels:
        buckets = (*BUCKETS, "all") if label == size_label else ("all",)
        columns.extend((label, bucket) for bucket in buckets)
    return tuple(columns)


def summarize(scores_by_method_trial: ScoresByMethodTrial, buckets: Mapping[str, str] | None = None,
              metric: str = "dice", size_label: str | None = None,
              thresholds: tuple[float, float] | None = None) -> Summary:
    """Table-2-style summary of ``{method: {trial: [CaseScore]}}``.

    ``buckets`` maps case -> "S" | "M" | "L" (see :func:`assign_buckets`); ``size_label``
    is the group whose columns are split by bucket.
    """
    labels = list(dict.fromkeys(s.label for trials in scores_by_method_trial.values()
                                for scores in trials.values() for s in scores))
    columns = columns_for(labels, size_label if buckets else None)
    rows = {method: {column: _cell(trials, column, buckets or {}, metric) for column in columns}
            for method, trials in scores_by_method_trial.items()}
    return Summary(metric, columns, rows, thresholds)


def column_values(trials: Mapping[str, Sequence[CaseScore]], column: Column,
                  buckets: Mapping[str, str], metric: str) -> tuple[list[float], str]:
    """The values a cell summarises: per-trial means, or per-case values for one trial."""
    label, bucket = column
    per_trial = []
    for scores in trials.values():
        values = [getattr(s, metric) for s in scores if s.label == label
                  and (bucket == "all" or buckets.get(s.case) == bucket)]
        per_trial.append(values)
    if len(per_trial) == 1:
        return per_trial[0], "cases"
    return [mean_std(v)[0] for v in per_trial if v], "trials"


def _cell(trials: Mapping[str, Sequence[CaseScore]], column: Column,
          buckets: Mapping[str, str], metric: str) -> Cell:
    values, over = column_values(trials, column, buckets, metric)
    mean, std = mean_std(values)
    return Cell(mean, std, len(values), over, tuple(values))


def ttest_rows(summary: Summary, reference: str, welch: bool = False
               ) -> dict[str, dict[Column, TTest | None]]:
    """t-test of every other method against ``reference``, column by column.

    A cell is ``None`` where either side has fewer than two values.
    """
    if reference not in summary.rows:
        raise ValueError(f"reference method {reference!r} is not in the summary")
    result: dict[str, dict[Column, TTest | None]] = {}
    for method, cells in summary.rows.items():
        if method == reference:
            continue
        row: dict[Column, TTest | None] = {}
        for column, cell in cells.items():
            try:
                row[column] = ttest(cell.values, summary.rows[reference][column].values, welch)
            except ValueError:
                row[column] = None
        result[method] = row
    return result
