"""Dice, HD95, volumes and size buckets against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from SARCore.errors import ConfigError
from SARCore.evaluation.metrics import (
    LabelGroup,
    assign_buckets,
    dice,
    dice_score,
    hd95,
    score_case,
    size_bucket,
    surface,
    tercile_thresholds,
    volume_ml,
)
from SARCore.io.arrays import image_to_array


def _volume(shape=(12, 12, 6)) -> np.ndarray:
    return np.zeros(shape, dtype=np.uint8)


def test_dice_by_hand() -> None:
    truth, pred = _volume(), _volume()
    truth[0:4, 0:5, 0:1] = 1  # 20 voxels
    pred[2:6, 0:5, 0:1] = 1  # 20 voxels, 10 shared
    assert dice(pred, truth, [1]) == {"1": pytest.approx(2 * 10 / 40)}
    truth[8:10, 8:10, 2:3] = 2  # 4 voxels of class 2, none predicted
    scores = dice(pred, truth, ["1", "2", "all=1,2"])
    assert scores == {"1": pytest.approx(0.5), "2": 0.0, "all": pytest.approx(20 / 44)}


def test_dice_is_one_when_both_are_empty() -> None:
    """Models Genesis' convention: nothing to find and nothing found is a perfect score."""
    empty = _volume()
    assert dice_score(empty.astype(bool), empty.astype(bool)) == 1.0
    assert dice(empty, empty, [1]) == {"1": 1.0}
    one = empty.copy()
    one[3, 3, 3] = 1
    assert dice(one, empty, [1]) == {"1": 0.0}


def test_default_groups_cover_each_value_and_the_whole() -> None:
    truth = _volume()
    truth[0, 0, 0], truth[1, 1, 1] = 1, 4
    assert set(dice(truth, truth)) == {"1", "4", "whole"}


def test_hd95_of_two_single_voxels_is_their_distance() -> None:
    pred, truth = _volume().astype(bool), _volume().astype(bool)
    truth[5, 5, 1], pred[5, 5, 5] = True, True
    assert hd95(pred, truth, (1.0, 1.0, 2.0)) == pytest.approx(8.0)


def test_hd95_percentile_by_hand() -> None:
    """A 10-voxel line with its last voxel displaced by 3 along x.

    pred -> truth distances: nine 0s and one 3 voxels; 95th percentile (linear) = 0.55 * 3.
    truth -> pred: nine 0s and one 1 voxel (its neighbour along y) = 0.55 * 1.
    With x spacing 2 mm: max(0.55 * 6, 0.55 * 1) = 3.3 mm.
    """
    truth, pred = np.zeros((8, 12, 3), bool), np.zeros((8, 12, 3), bool)
    truth[0, 0:10, 1] = True
    pred[0, 0:9, 1] = True
    pred[3, 9, 1] = True
    assert hd95(pred, truth, (1.0, 1.0, 1.0)) == pytest.approx(0.55 * 3)
    assert hd95(pred, truth, (2.0, 1.0, 1.0)) == pytest.approx(0.55 * 6)


def test_hd95_empty_cases() -> None:
    empty, one = np.zeros((4, 4, 4), bool), np.zeros((4, 4, 4), bool)
    one[1, 1, 1] = True
    assert hd95(empty, empty, (1, 1, 1)) == 0.0
    assert math.isnan(hd95(one, empty, (1, 1, 1)))


def test_surface_is_the_shell() -> None:
    cube = np.zeros((7, 7, 7), bool)
    cube[1:6, 1:6, 1:6] = True
    assert surface(cube).sum() == 5**3 - 3**3


def test_real_labels_shifted_by_two_slices(brats2015_cases) -> None:
    """A real tumor against itself moved 2 slices: every surface point is within 2 mm."""
    labels = image_to_array(sitk.ReadImage(str(brats2015_cases[1] / "OTMultiClass.nii.gz")))
    truth = labels > 0
    pred = np.zeros_like(truth)
    pred[:, :, 2:] = truth[:, :, :-2]
    assert 0.0 < hd95(pred, truth, (1.0, 1.0, 1.0)) <= 2.0
    assert 0.0 < hd95(pred, truth, (1.0, 1.0, 3.0)) <= 6.0  # z spacing scales it
    overlap = np.count_nonzero(pred & truth)
    expected = 2 * overlap / (np.count_nonzero(pred) + np.count_nonzero(truth))
    [score] = score_case("pat2", pred.astype(np.uint8), truth.astype(np.uint8), (1, 1, 1),
                         [LabelGroup("whole", (1,))])
    assert score.dice == pytest.approx(expected) and 0.5 < score.dice < 1.0
    assert score.truth_ml == pytest.approx(np.count_nonzero(truth) / 1000)


def test_volume_in_millilitres() -> None:
    mask = np.zeros((10, 10, 10), bool)
    mask[:5, :4, :2] = True  # 40 voxels of 0.5 x 0.5 x 2 mm = 0.5 mm^3 each = 20 mm^3
    assert volume_ml(mask, (0.5, 0.5, 2.0)) == pytest.approx(0.02)


def test_size_buckets_and_terciles() -> None:
    assert size_bucket(10.0, (20.0, 60.0)) == "S"
    assert size_bucket(20.0, (20.0, 60.0)) == "S"  # a threshold belongs to the lower bucket
    assert size_bucket(20.1, (20.0, 60.0)) == "M"
    assert size_bucket(61.0, (20.0, 60.0)) == "L"
    with pytest.raises(ConfigError, match="increasing"):
        size_bucket(1.0, (60.0, 20.0))
    # 0, 10, ..., 60: linear percentiles at 33.3 % and 66.7 % of the 6 gaps -> 20 and 40
    low, high = tercile_thresholds([0, 10, 20, 30, 40, 50, 60])
    assert (low, high) == (pytest.approx(20.0), pytest.approx(40.0))


def test_assign_buckets_uses_the_truth_volume() -> None:
    from SARCore.evaluation.metrics import CaseScore

    scores = [CaseScore(f"c{v}", "whole", 0.8, 1.0, float(v), 0.0) for v in (5, 15, 25)]
    scores.append(CaseScore("c5", "edema", 0.5, 1.0, 99.0, 0.0))  # another group: ignored
    buckets, thresholds = assign_buckets(scores, "whole", (10.0, 20.0))
    assert buckets == {"c5": "S", "c15": "M", "c25": "L"} and thresholds == (10.0, 20.0)
    buckets, thresholds = assign_buckets(scores, "whole")
    assert sorted(buckets.values()) == ["L", "M", "S"]


def test_label_group_parsing() -> None:
    assert LabelGroup.parse("whole=1,2,3,4") == LabelGroup("whole", (1, 2, 3, 4))
    assert LabelGroup.parse(2) == LabelGroup("2", (2,))
    for bad in ("tumor=a", "0", "x=1,-2"):
        with pytest.raises(ConfigError):
            LabelGroup.parse(bad)
