"""The MG Dice loss against values worked out by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from SARCore.errors import ConfigError
from SARCore.losses.dice import SegmentationLoss, dice_loss

BIG = 60.0  # a logit whose sigmoid/softmax is 1 within float32 rounding


def _vox(values: list[float]) -> torch.Tensor:
    """A (1, 1, N, 1, 1) tensor from N voxel values."""
    return torch.tensor(values, dtype=torch.float32).reshape(1, 1, -1, 1, 1)


def test_binary_dice_by_hand() -> None:
    # inter = 0.5 + 1 = 1.5, sum(y) = 2, sum(p) = 1.5: 1 - (3 + 1) / (3.5 + 1) = 1/9
    loss = dice_loss(_vox([0.5, 1, 0, 0]), _vox([1, 1, 0, 0]))
    assert loss.item() == pytest.approx(1 / 9, abs=1e-6)


def test_dice_pools_the_batch_not_the_samples() -> None:
    probs = torch.cat([_vox([1, 0]), _vox([1, 1])])
    truth = torch.cat([_vox([1, 0]), _vox([0, 0])])
    # pooled: inter 1, sum(y) 1, sum(p) 3 -> 1 - 3/5 = 0.4 (per-sample mean would be 1/3)
    assert dice_loss(probs, truth).item() == pytest.approx(0.4, abs=1e-6)


def test_empty_truth_and_prediction_is_a_perfect_score() -> None:
    assert dice_loss(_vox([0, 0, 0]), _vox([0, 0, 0])).item() == pytest.approx(0.0)


def test_sigmoid_loss_from_logits_matches_hand_value() -> None:
    logits = _vox([0.0, BIG, -BIG, -BIG])      # sigmoid -> 0.5, 1, 0, 0
    target = torch.tensor([1, 1, 0, 0]).reshape(1, 4, 1, 1)
    terms = SegmentationLoss("sigmoid")(logits, target)
    assert terms["loss"].item() == pytest.approx(1 / 9, abs=1e-5)
    assert set(terms) == {"loss", "dice_loss"}


def _softmax_case() -> tuple[torch.Tensor, torch.Tensor]:
    predicted = torch.tensor([0, 1, 0, 1])     # argmax per voxel, made certain below
    logits = F.one_hot(predicted, 3).T.float().mul(BIG).reshape(1, 3, 4, 1, 1)
    target = torch.tensor([0, 1, 2, 2]).reshape(1, 4, 1, 1)
    return logits, target


def test_softmax_dice_is_the_mean_over_foreground_classes() -> None:
    logits, target = _softmax_case()
    # class 1: inter 1, y 1, p 2 -> 3/4; class 2: inter 0, y 2, p 0 -> 1/3
    expected = 1 - (3 / 4 + 1 / 3) / 2
    terms = SegmentationLoss("softmax")(logits, target)
    assert terms["loss"].item() == pytest.approx(expected, abs=1e-5)
    # with the background (inter 1, y 1, p 2 -> 3/4) in the mean
    with_bg = SegmentationLoss("softmax", include_background=True)(logits, target)
    assert with_bg["loss"].item() == pytest.approx(1 - (3 / 4 + 3 / 4 + 1 / 3) / 3, abs=1e-5)


def test_dice_plus_cross_entropy_adds_the_weighted_ce() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, 2)
    target = torch.randint(0, 3, (2, 4, 4, 2))
    terms = SegmentationLoss("softmax", ce_weight=0.5)(logits, target)
    ce = F.cross_entropy(logits, target)
    assert terms["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx(terms["dice_loss"].item() + 0.5 * ce.item(),
                                                 rel=1e-5)


def test_gradient_lowers_the_loss() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 1, 8, 8, 4, requires_grad=True)
    target = (torch.rand(1, 8, 8, 4) > 0.7).long()
    loss_fn = SegmentationLoss("sigmoid")
    before = loss_fn(logits, target)["loss"]
    before.backward()
    after = loss_fn(logits.detach() - 5.0 * logits.grad, target)["loss"]
    assert torch.isfinite(logits.grad).all()
    assert after.item() < before.item()


def test_unknown_activation_is_refused() -> None:
    with pytest.raises(ConfigError, match="softmax"):
        SegmentationLoss("relu")
