"""Deterministic case splits: train/test per trial, K folds, label fractions, validation.

Every split is a pure function of the sorted case ids and a seed, so a resumed run, the
experiment runner and a reader of ``split.json`` all see the same cases. Label
fractions take a prefix of one seeded order of the training cases, so the 1/10 subset
lies inside the 1/5 subset (Table 4 compares nested annotation budgets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from SARCore.errors import ConfigError


@dataclass(frozen=True)
class Split:
    """The cases of one trial or fold (ids only; ``test`` is never used in training)."""

    name: str
    seed: int                    # drives the label subset, validation, patches and init
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]

    def to_dict(self) -> dict[str, list[str] | str]:
        return {"name": self.name, "seed": self.seed, "train": list(self.train),
                "validation": list(self.validation), "test": list(self.test)}


def _shuffled(ids: Sequence[str], seed: int, salt: int) -> list[str]:
    order = np.random.default_rng([int(seed), salt]).permutation(len(ids))
    ordered = sorted(ids)
    return [ordered[i] for i in order]


def split_seed(seed: int, index: int) -> int:
    """The seed of trial or fold ``index`` under the run's ``seed``: a hash of the pair.

    ``seed + index`` made fold 1 of seed 0 and fold 0 of seed 1 the same training run
    (same init, patches and, at small label fractions, the same cases), so "two seeds"
    repeated runs instead of adding independent ones. Distinct pairs give distinct seeds.
    """
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] >> 1)


def _check_ids(ids: Sequence[str], needed: int, what: str) -> None:
    if len(set(ids)) != len(ids):
        raise ConfigError("case ids repeat; each case needs a unique id")
    if len(ids) < needed:
        raise ConfigError(f"{what} needs at least {needed} labeled cases, found {len(ids)}")


def train_test_split(ids: Sequence[str], seed: int, test_ratio: float = 1 / 3,
                     ) -> tuple[list[str], list[str]]:
    """Trial split (paper: 2:1); at least one case on each side."""
    _check_ids(ids, 2, "a train/test split")
    cases = _shuffled(ids, seed, 1)
    n_test = min(len(cases) - 1, max(1, round(len(cases) * test_ratio)))
    return sorted(cases[n_test:]), sorted(cases[:n_test])


def kfold_splits(ids: Sequence[str], folds: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """``folds`` (train, test) pairs; each case is tested in exactly one fold."""
    _check_ids(ids, folds, f"{folds}-fold cross-validation")
    if folds < 2:
        raise ConfigError(f"folds must be at least 2, not {folds}")
    cases = _shuffled(ids, seed, 2)
    pairs = []
    for part in np.array_split(np.arange(len(cases)), folds):
        test = {cases[j] for j in part}
        pairs.append((sorted(set(cases) - test), sorted(test)))
    return pairs


def fraction_count(n_cases: int, fraction: float) -> int:
    """How many of ``n_cases`` a label fraction keeps: rounded, at least 1."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"label fraction must be in (0, 1], not {fraction!r}")
    return max(1, min(n_cases, int(np.floor(n_cases * fraction + 0.5))))


def label_fraction_subset(train: Sequence[str], fraction: float, seed: int) -> list[str]:
    """The labeled cases a fraction keeps; smaller fractions are subsets of larger ones."""
    cases = _shuffled(train, seed, 3)
    return sorted(cases[:fraction_count(len(cases), fraction)])


def validation_split(labeled: Sequence[str], val_ratio: float, seed: int,
                     ) -> tuple[list[str], list[str]]:
    """Hold out ``val_ratio`` of the labeled cases (at least 1) when 2 or more exist.

    With a single labeled case nothing can be held out: (train, []) and the caller
    validates on fixed patches of the training case instead.
    """
    if len(labeled) < 2 or val_ratio <= 0:
        return sorted(labeled), []
    cases = _shuffled(labeled, seed, 4)
    n_val = min(len(cases) - 1, max(1, round(len(cases) * val_ratio)))
    return sorted(cases[n_val:]), sorted(cases[:n_val])


def make_splits(ids: Sequence[str], *, trials: int, folds: int, seed: int, test_ratio: float,
                label_fraction: float, val_ratio: float) -> list[Split]:
    """All trials or all folds, each reduced to its label fraction.

    Trial ``t`` splits with its own seed (:func:`split_seed`); the folds share one shuffle
    by ``seed``. Split ``k``'s own seed then picks its labeled subset and validation cases
    and drives its patches and initialisation.
    """
    if folds:
        pairs = kfold_splits(ids, folds, seed)
        named = [(f"fold_{k}", split_seed(seed, k), train, test)
                 for k, (train, test) in enumerate(pairs)]
    else:
        named = [(f"trial_{t}", split_seed(seed, t),
                  *train_test_split(ids, split_seed(seed, t), test_ratio))
                 for t in range(trials)]
    splits = []
    for name, own_seed, train, test in named:
        labeled = label_fraction_subset(train, label_fraction, own_seed)
        fit, val = validation_split(labeled, val_ratio, own_seed)
        splits.append(Split(name, own_seed, tuple(fit), tuple(val), tuple(test)))
    return splits
