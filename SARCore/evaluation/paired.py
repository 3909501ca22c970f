"""Paired comparison of two initialisations over the same test cases (folds x seeds).

A leave-one-out study tests every method on the same case in the same fold and seed, so
the right test is paired: the paired t-test on the per-pair differences, and the
Wilcoxon signed-rank test, which does not assume the differences are normal (a handful
of folds cannot show that they are). Pairs with a NaN on either side are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats


@dataclass(frozen=True)
class PairedResult:
    """``a`` against ``b`` over ``n`` matched pairs (differences are ``a - b``)."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    std_diff: float
    wins: int           # pairs where a > b
    losses: int         # pairs where a < b
    t_pvalue: float     # paired t-test, two-sided (NaN below 2 pairs or no spread)
    wilcoxon_pvalue: float  # Wilcoxon signed-rank, two-sided (NaN when not computable)


def paired_values(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """The values of the keys both sides have, finite on both sides, in key order."""
    keys = sorted(k for k in a if k in b and not math.isnan(a[k]) and not math.isnan(b[k]))
    return (np.array([a[k] for k in keys], dtype=np.float64),
            np.array([b[k] for k in keys], dtype=np.float64))


def paired_compare(a: Mapping[str, float], b: Mapping[str, float]) -> PairedResult:
    """Paired t-test and Wilcoxon of ``a`` against ``b`` (dicts keyed by pair id)."""
    x, y = paired_values(a, b)
    diff = x - y
    n = int(diff.size)
    t_p = w_p = math.nan
    if n >= 2 and float(np.std(diff)) > 0:
        t_p = float(scipy_stats.ttest_rel(x, y).pvalue)
    if n >= 2 and np.any(diff != 0):
        try:
            w_p = float(scipy_stats.wilcoxon(x, y).pvalue)
        except ValueError:
            w_p = math.nan
    return PairedResult(n, _mean(x), _mean(y), _mean(diff),
                        float(np.std(diff, ddof=1)) if n > 1 else math.nan,
                        int(np.count_nonzero(diff > 0)), int(np.count_nonzero(diff < 0)),
                        t_p, w_p)


def _mean(values: Sequence[float] | np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def verdict(name_a: str, name_b: str, result: PairedResult, alpha: float = 0.05,
            scale: float = 100.0, unit: str = " Dice points") -> str:
    """One plain sentence: does ``a`` beat ``b`` here, by how much, and how sure."""
    if result.n == 0:
        return f"{name_a} and {name_b} share no scored test case: no comparison."
    diff = result.mean_diff * scale
    ps = [p for p in (result.t_pvalue, result.wilcoxon_pvalue) if not math.isnan(p)]
    p_text = (f"paired t-test p = {_p(result.t_pvalue)}, Wilcoxon p = "
              f"{_p(result.wilcoxon_pvalue)}")
    record = f"{result.wins} wins and {result.losses} losses in {result.n} pairs"
    if diff > 0 and ps and max(ps) < alpha:
        head = f"Yes: {name_a} beats {name_b} here by {diff:.1f}{unit} on average"
    elif diff > 0:
        head = (f"Not shown: {name_a} scores {diff:.1f}{unit} above {name_b} on average, "
                f"but the difference is not significant")
    elif diff < 0:
        head = f"No: {name_a} scores {-diff:.1f}{unit} below {name_b} on average"
    else:
        head = f"No: {name_a} and {name_b} score the same on average"
    return f"{head} ({record}; {p_text})."


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3g}"
