"""Case splits: disjoint, deterministic, and label fractions of the right size."""

from __future__ import annotations

import pytest

from SARCore.errors import ConfigError
from SARCore.finetune.splits import (
    fraction_count,
    kfold_splits,
    label_fraction_subset,
    make_splits,
    split_seed,
    train_test_split,
    validation_split,
)

IDS = [f"case{i:03d}" for i in range(285)]  # BraTS 2018 training set size


def test_trial_split_is_two_to_one_disjoint_and_complete() -> None:
    train, test = train_test_split(IDS, seed=3)
    assert len(test) == 95 and len(train) == 190
    assert not set(train) & set(test)
    assert sorted(train + test) == IDS


def test_trial_splits_are_deterministic_and_differ_by_seed() -> None:
    assert train_test_split(IDS, seed=1) == train_test_split(list(reversed(IDS)), seed=1)
    assert train_test_split(IDS, seed=1)[1] != train_test_split(IDS, seed=2)[1]


def test_kfold_tests_every_case_exactly_once() -> None:
    folds = kfold_splits(IDS[:282], 5, seed=0)  # MSD pancreas: 282 cases
    tested = [c for _, test in folds for c in test]
    assert sorted(tested) == IDS[:282]
    assert [len(test) for _, test in folds] == [57, 57, 56, 56, 56]
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == 282


@pytest.mark.parametrize(("fraction", "expected"),
                         [(1 / 2, 95), (1 / 5, 38), (1 / 10, 19), (1 / 20, 10), (1 / 50, 4),
                          (1.0, 190)])
def test_label_fraction_counts_of_190_training_cases(fraction: float, expected: int) -> None:
    assert fraction_count(190, fraction) == expected
    assert len(label_fraction_subset(IDS[:190], fraction, seed=0)) == expected


def test_label_fraction_keeps_at_least_one_case() -> None:
    assert fraction_count(3, 1 / 50) == 1
    assert label_fraction_subset(["a", "b", "c"], 1 / 50, seed=0) in (["a"], ["b"], ["c"])


def test_smaller_fractions_are_subsets_of_larger_ones() -> None:
    subsets = [set(label_fraction_subset(IDS[:190], f, seed=4)) for f in (1 / 2, 1 / 5, 1 / 10)]
    assert subsets[2] < subsets[1] < subsets[0]


def test_validation_is_held_out_of_the_labeled_cases() -> None:
    fit, val = validation_split(IDS[:10], 0.2, seed=0)
    assert len(val) == 2 and not set(fit) & set(val) and sorted(fit + val) == IDS[:10]
    assert validation_split(["only"], 0.2, seed=0) == (["only"], [])


def test_make_splits_trials_never_train_on_test_cases() -> None:
    splits = make_splits(IDS[:30], trials=5, folds=0, seed=7, test_ratio=1 / 3,
                         label_fraction=0.5, val_ratio=0.2)
    assert [s.name for s in splits] == [f"trial_{t}" for t in range(5)]
    assert [s.seed for s in splits] == [split_seed(7, t) for t in range(5)]
    for split in splits:
        assert len(split.test) == 10
        assert len(split.train) + len(split.validation) == 10  # half of 20 training cases
        assert not (set(split.train) | set(split.validation)) & set(split.test)
    assert splits == make_splits(IDS[:30], trials=5, folds=0, seed=7, test_ratio=1 / 3,
                                 label_fraction=0.5, val_ratio=0.2)


def test_too_few_cases_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        train_test_split(["one"], seed=0)
    with pytest.raises(ConfigError, match="5-fold"):
        kfold_splits(["a", "b", "c"], 5, seed=0)
    with pytest.raises(ConfigError, match="repeat"):
        train_test_split(["a", "a", "b"], seed=0)


def test_seeds_never_repeat_a_split_across_folds_and_trials() -> None:
    """Two seeds x four folds are eight independent runs: ``seed + fold`` once gave fold 1 of
    seed 0 and fold 0 of seed 1 the same seed, so with one training case they trained the
    identical model and a paired test counted it twice."""
    ids = [f"case{i}" for i in range(4)]
    for kind in ({"folds": 4, "trials": 0}, {"folds": 0, "trials": 4}):
        seeds = [split.seed for seed in (0, 1, 2)
                 for split in make_splits(ids, **kind, seed=seed, test_ratio=0.25,
                                          label_fraction=1 / 3, val_ratio=0.0)]
        assert len(set(seeds)) == len(seeds) == 12
        assert all(0 <= s < 2**63 for s in seeds)
