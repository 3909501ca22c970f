"""Paired tests over folds x seeds and the plain sentence the study report prints."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from SARCore.evaluation.paired import paired_compare, verdict


def test_paired_tests_match_scipy_and_drop_unmatched_pairs():
    a = {"s0/f0/c1": 0.80, "s0/f1/c2": 0.70, "s1/f0/c2": 0.90, "s1/f1/c1": 0.85, "x": 0.5}
    b = {"s0/f0/c1": 0.60, "s0/f1/c2": 0.65, "s1/f0/c2": 0.70, "s1/f1/c1": math.nan}
    result = paired_compare(a, b)
    assert result.n == 3 and result.wins == 3 and result.losses == 0
    assert result.mean_diff == pytest.approx((0.2 + 0.05 + 0.2) / 3)
    assert result.t_pvalue == pytest.approx(stats.ttest_rel([0.8, 0.7, 0.9],
                                                            [0.6, 0.65, 0.7]).pvalue)


def test_verdict_says_yes_only_when_both_tests_agree():
    many = {str(k): 0.8 + 0.01 * (k % 3) for k in range(12)}
    lower = {k: v - 0.1 - 0.001 * int(k) for k, v in many.items()}
    assert verdict("SAR", "Scratch", paired_compare(many, lower)).startswith(
        "Yes: SAR beats Scratch here by 10.")
    few = paired_compare({"a": 0.8, "b": 0.6}, {"a": 0.7, "b": 0.65})
    assert verdict("SAR", "Scratch", few).startswith("Not shown: SAR scores 2.5 Dice points")
    worse = paired_compare({"a": 0.5, "b": 0.6}, {"a": 0.7, "b": 0.65})
    assert verdict("SAR", "Genesis", worse).startswith("No: SAR scores 12.5 Dice points below")
