"""Mean +- std over trials, t-tests and Table-2 summaries against hand-computed values."""

from __future__ import annotations

import math

import pytest

from SARCore.evaluation.metrics import CaseScore
from SARCore.evaluation.stats import mean_std, summarize, ttest, ttest_rows


def test_mean_and_sample_std() -> None:
    assert mean_std([0.8, 0.9, 1.0]) == (pytest.approx(0.9), pytest.approx(0.1))
    assert mean_std([0.7]) == (pytest.approx(0.7), 0.0)
    assert mean_std([0.5, math.nan, 0.7]) == (pytest.approx(0.6), pytest.approx(math.sqrt(0.02)))
    assert all(math.isnan(v) for v in mean_std([]))


def test_student_t_test_by_hand() -> None:
    """a = 1, 2, 3; b = 4, 5, 6: pooled variance 1, t = -3 / sqrt(2/3), df 4, p = 0.0213."""
    result = ttest([1, 2, 3], [4, 5, 6])
    assert result.statistic == pytest.approx(-3 / math.sqrt(2 / 3))
    assert result.df == pytest.approx(4)
    assert result.pvalue == pytest.approx(0.02131, abs=5e-5)  # t-table value for |t|=3.674, df=4
    assert not result.welch


def test_welch_t_test_by_hand() -> None:
    """a = 1, 2, 3, 4 (var 5/3); b = 2, 4, 6, 8, 10 (var 10).

    Welch: t = (2.5 - 6) / sqrt(5/3 / 4 + 10 / 5) = -2.2514; Welch-Satterthwaite
    df = (5/12 + 2)^2 / ((5/12)^2 / 3 + 2^2 / 4) = 5.5208.
    Student: pooled variance (3 * 5/3 + 4 * 10) / 7 = 45/7, t = -3.5 / sqrt(45/7 * 0.45).
    """
    result = ttest([1, 2, 3, 4], [2, 4, 6, 8, 10], welch=True)
    assert result.statistic == pytest.approx(-3.5 / math.sqrt(5 / 12 + 2))
    assert result.df == pytest.approx((5 / 12 + 2) ** 2 / ((5 / 12) ** 2 / 3 + 4 / 4))
    assert 0.05 < result.pvalue < 0.1 and result.welch
    student = ttest([1, 2, 3, 4], [2, 4, 6, 8, 10])
    assert student.df == 7
    assert student.statistic == pytest.approx(-3.5 / math.sqrt(45 / 7 * 0.45))


def test_t_test_needs_two_values_per_side() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        ttest([0.5], [0.6, 0.7])


def _scores(values: dict[str, float], label: str = "whole") -> list[CaseScore]:
    return [CaseScore(case, label, d, 2.0, 0.0, 0.0) for case, d in values.items()]


BUCKETS = {"a": "S", "b": "S", "c": "L"}


def test_summary_over_trials_by_hand() -> None:
    scores = {
        "Scratch": {"t1": _scores({"a": 0.6, "b": 0.8, "c": 0.9}),
                    "t2": _scores({"a": 0.4, "b": 0.6, "c": 0.7})},
        "SAR": {"t1": _scores({"a": 0.8, "b": 0.9, "c": 0.95}),
                "t2": _scores({"a": 0.7, "b": 0.9, "c": 0.9})},
    }
    summary = summarize(scores, BUCKETS, "dice", "whole", (10.0, 50.0))
    assert summary.columns == (("whole", "S"), ("whole", "M"), ("whole", "L"), ("whole", "all"))
    small = summary.rows["Scratch"][("whole", "S")]
    # trial means of bucket S: t1 (0.6 + 0.8) / 2 = 0.7, t2 0.5 -> 0.6 +- sqrt(0.02)
    assert small.values == pytest.approx((0.7, 0.5))
    assert (small.mean, small.std, small.n, small.over) == (
        pytest.approx(0.6), pytest.approx(math.sqrt(0.02)), 2, "trials")
    everything = summary.rows["SAR"][("whole", "all")]
    assert everything.values == pytest.approx(((0.8 + 0.9 + 0.95) / 3, (0.7 + 0.9 + 0.9) / 3))
    assert summary.rows["SAR"][("whole", "M")].n == 0  # no medium case
    tests = ttest_rows(summary, "SAR")
    expected = ttest((0.7, 0.5), (0.85, 0.8))
    assert tests["Scratch"][("whole", "S")].pvalue == pytest.approx(expected.pvalue)
    assert tests["Scratch"][("whole", "M")] is None


def test_single_trial_spreads_over_cases() -> None:
    summary = summarize({"run": {"only": _scores({"a": 0.5, "b": 0.7, "c": 0.9})}})
    cell = summary.rows["run"][("whole", "all")]
    assert summary.columns == (("whole", "all"),)  # no buckets given: no S/M/L columns
    assert (cell.mean, cell.std, cell.n, cell.over) == (
        pytest.approx(0.7), pytest.approx(0.2), 3, "cases")
