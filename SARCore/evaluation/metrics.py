"""Per-case segmentation metrics on ``[x, y, z]`` label arrays, distances in millimetres.

Conventions (stated because papers differ):

* **Dice** ``2|P n T| / (|P| + |T|)``; **1.0 when prediction and truth are both empty**
  (Models Genesis' convention, which the SAR paper follows; MONAI's ``DiceMetric`` gives
  NaN there instead).
* **HD95**: the larger of the two directed 95th percentiles of surface-to-surface
  distances (MONAI's and the BraTS toolkit's definition), with the voxel spacing from the
  image (direction cosines do not change distances). Surfaces are the voxels of a mask
  with a 6-neighbour outside it. Both empty: 0.0. Exactly one empty: NaN (undefined; it
  is left out of means and counted separately).
* **Volumes** in millilitres: voxel count x voxel volume (mm^3) / 1000.
* **Size buckets** (the paper's Tumor_S/M/L): by the truth's whole-tumor volume, ``S`` up
  to the first threshold, ``M`` up to the second, ``L`` above. The paper gives no cut
  points; :func:`tercile_thresholds` splits a reference set into three equal parts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from SARCore.errors import ConfigError

BUCKETS = ("S", "M", "L")


@dataclass(frozen=True)
class LabelGroup:
    """A named set of label values scored as one mask (``whole=1,2,3,4`` is BraTS' WT),
    or a class rule as ``finetune --labels`` writes it (``tumor:>0``)."""

    name: str
    values: tuple[int, ...]
    rule: str | None = None
    #: A model's output label value(s) of this class, and that model's classes: the
    #: prediction is read by its label values, the truth mapped as fine-tuning maps it.
    outputs: tuple[int, ...] = ()
    classes: tuple[Any, ...] = ()  # SARCore.finetune.labels.ClassSpec

    @classmethod
    def parse(cls, text: str | int) -> LabelGroup:
        """``"2"`` -> ``2: (2,)``; ``"tumor=1,2,4"`` -> ``tumor: (1, 2, 4)``;
        ``"tumor:>0"`` -> ``tumor`` with the rule ``>0`` (see SARCore.finetune.labels)."""
        if ":" in str(text):
            return parse_rules(str(text))[0]
        name, _, values = str(text).partition("=")
        try:
            numbers = tuple(int(v) for v in (values or name).split(","))
        except ValueError as exc:
            raise ConfigError(f"label must look like tumor:>0, 2 or name=1,2,4, not "
                              f"{text!r}") from exc
        if not numbers or any(v <= 0 for v in numbers):
            raise ConfigError(f"label values must be positive (0 is background): {text!r}")
        return cls(name.strip(), numbers)

    def mask(self, labels: np.ndarray) -> np.ndarray:
        """The group's voxels in a ground-truth label map."""
        if self.classes:
            from SARCore.finetune.labels import map_labels

            return np.isin(map_labels(labels, tuple(self.classes)), self.outputs)
        if self.rule is not None:
            from SARCore.finetune.labels import ClassSpec

            return ClassSpec(self.name, 0, self.rule, (0.0, 0.0, 0.0)).select(labels)
        return np.isin(labels, self.values)


    def pred_mask(self, labels: np.ndarray) -> np.ndarray:
        """The group's voxels in a predicted label map (a model's output values)."""
        return np.isin(labels, self.outputs) if self.outputs else self.mask(labels)


def parse_rules(text: str) -> list[LabelGroup]:
    """``"pancreas:1,tumor:2"`` -> two groups: the class syntax of ``finetune --labels``."""
    from SARCore.finetune.labels import parse_classes

    return [LabelGroup(c.name, (), c.rule) for c in parse_classes(text)]


def parse_label_option(items: Sequence[str]) -> list[LabelGroup]:
    """``evaluate --labels``: ``'tumor:>0'`` or ``'pancreas:1,tumor:2'`` (as ``finetune``),
    or the older ``1 2`` / ``whole=1,2,4`` items."""
    text = " ".join(items).strip()
    if ":" in text:
        return parse_rules(text)
    return as_groups(text.split())


def as_groups(labels: Iterable[LabelGroup | int | str]) -> list[LabelGroup]:
    return [item if isinstance(item, LabelGroup) else LabelGroup.parse(item) for item in labels]


def default_groups(*label_arrays: np.ndarray) -> list[LabelGroup]:
    """One group per non-zero value present, plus ``whole`` (any non-zero) if several."""
    present = sorted({int(v) for array in label_arrays for v in np.unique(array) if v > 0})
    groups = [LabelGroup(str(v), (v,)) for v in present]
    if len(present) > 1:
        groups.append(LabelGroup("whole", tuple(present)))
    return groups


def dice_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(truth))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(pred & truth)) / total


def dice(pred: np.ndarray, truth: np.ndarray,
         labels: Sequence[LabelGroup | int | str] | None = None) -> dict[str, float]:
    """Dice per label group of two label arrays: ``{"1": 0.8, "whole": 0.9}``."""
    groups = as_groups(labels) if labels is not None else default_groups(pred, truth)
    return {g.name: dice_score(g.pred_mask(pred), g.mask(truth)) for g in groups}


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one 6-neighbour outside it (or outside the array)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> float:
    """95% Hausdorff distance in mm between two boolean masks (see module docstring)."""
    has_pred, has_truth = bool(pred.any()), bool(truth.any())
    if not has_pred and not has_truth:
        return 0.0
    if not has_pred or not has_truth:
        return math.nan
    box = _bounding_box(pred | truth)
    pred, truth = np.pad(pred[box], 1), np.pad(truth[box], 1)
    pred_surface, truth_surface = surface(pred), surface(truth)
    to_truth = ndimage.distance_transform_edt(~truth_surface, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
    return float(max(np.percentile(to_truth[pred_surface], 95),
                     np.percentile(to_pred[truth_surface], 95)))


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of a boolean mask in millilitres."""
    return int(np.count_nonzero(mask)) * float(np.prod(spacing)) / 1000.0


def tercile_thresholds(volumes: Sequence[float]) -> tuple[float, float]:
    """Cut points splitting ``volumes`` into three equal parts (33.3 and 66.7 percentiles)."""
    if len(volumes) == 0:
        raise ValueError("no volumes to take terciles of")
    low, high = np.percentile(np.asarray(volumes, dtype=np.float64), [100 / 3, 200 / 3])
    return float(low), float(high)


def size_bucket(volume: float, thresholds: tuple[float, float]) -> str:
    """``"S"`` if ``volume <= thresholds[0]``, ``"M"`` if ``<= thresholds[1]``, else ``"L"``."""
    low, high = thresholds
    if low > high:
        raise ConfigError(f"size thresholds must be increasing, not {thresholds}")
    return "S" if volume <= low else "M" if volume <= high else "L"


@dataclass(frozen=True)
class CaseScore:
    """Scores of one label group in one case."""

    case: str
    label: str
    dice: float
    hd95: float  # mm; NaN when exactly one of prediction and truth is empty
    truth_ml: float
    pred_ml: float


def score_case(case: str, pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
               groups: Sequence[LabelGroup]) -> list[CaseScore]:
    """Dice, HD95 and volumes of each group for one case (arrays on the same grid)."""
    scores = []
    for group in groups:
        p, t = group.pred_mask(pred), group.mask(truth)
        scores.append(CaseScore(case, group.name, dice_score(p, t), hd95(p, t, spacing),
                                volume_ml(t, spacing), volume_ml(p, spacing)))
    return scores


def assign_buckets(scores: Sequence[CaseScore], size_label: str,
                   thresholds: tuple[float, float] | None = None
                   ) -> tuple[dict[str, str], tuple[float, float]]:
    """``({case: "S"|"M"|"L"}, thresholds)`` from the truth volume of group ``size_label``.

    ``thresholds`` (mL) default to the terciles of these cases' truth volumes.
    """
    volumes = {s.case: s.truth_ml for s in scores if s.label == size_label}
    if not volumes:
        raise ConfigError(f"no scores for label group {size_label!r} to take sizes from")
    if thresholds is None:
        thresholds = tercile_thresholds(list(volumes.values()))
    return {case: size_bucket(v, thresholds) for case, v in volumes.items()}, thresholds
