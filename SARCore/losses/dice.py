"""Segmentation losses: the Models Genesis Dice loss, optionally plus cross-entropy.

MG's Dice loss pools the whole batch into one sum per class::

    loss = 1 - (2 * sum(y * p) + 1) / (sum(y) + sum(p) + 1)

so an all-background batch that is predicted as background scores a loss near 0 (the
smoothing term makes the empty/empty case a perfect Dice, as MG scores it).

Two output layouts, matching the model header's ``output_activation``:

* ``"sigmoid"``: one output channel, a binary target (whole tumor);
* ``"softmax"``: K output channels (background + K-1 classes), a class-index target;
  the Dice term is the mean over the foreground classes (``include_background=False``,
  the default, because the background dominates and would hide a small tumor class).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from SARCore.config import check_choice

ACTIVATIONS = ("sigmoid", "softmax")


def soft_dice(probs: torch.Tensor, truth: torch.Tensor, smooth: float = 1.0,
              across_ranks: bool = False) -> torch.Tensor:
    """Per-channel soft Dice over the whole batch.

    ``probs``, ``truth``: ``(B, C, X, Y, Z)`` in [0, 1] -> ``(C,)``. ``across_ranks``
    (training under DDP) pools the sums over every process's share of the batch, with
    a gradient-carrying all-reduce, so N ranks x B patches train like 1 x N*B.
    """
    dims = (0, *range(2, probs.ndim))
    intersection = (probs * truth).sum(dims)
    total = probs.sum(dims) + truth.sum(dims)
    if across_ranks:
        from SARCore.training.sync_batchnorm import all_reduce

        summed = all_reduce(torch.cat([intersection, total]))
        intersection, total = summed[:intersection.numel()], summed[intersection.numel():]
    return (2.0 * intersection + smooth) / (total + smooth)


def dice_loss(probs: torch.Tensor, truth: torch.Tensor, smooth: float = 1.0,
              across_ranks: bool = False) -> torch.Tensor:
    """MG Dice loss ``1 - mean_c soft_dice`` (a scalar)."""
    return 1.0 - soft_dice(probs, truth, smooth, across_ranks).mean()


def pool_across_ranks(module: nn.Module) -> bool:
    """Whether a batch-pooled Dice pools over every DDP process: in training, where each
    rank holds a share of the batch (evaluation passes shard items, not batches)."""
    from SARCore.training.distributed import group_active

    return module.training and group_active()


def one_hot(target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Class indices ``(B, X, Y, Z)`` -> float one-hot ``(B, n_classes, X, Y, Z)``."""
    return F.one_hot(target.long(), n_classes).movedim(-1, 1).float()


class SegmentationLoss(nn.Module):
    """Dice loss (``ce_weight=0``) or Dice + ``ce_weight`` * cross-entropy, on logits.

    ``forward(logits (B, C, X, Y, Z), target (B, X, Y, Z) class indices)`` returns
    ``{"loss", "dice_loss"[, "ce"]}``; the extra terms are detached for logging.
    """

    def __init__(self, activation: str = "sigmoid", include_background: bool = False,
                 ce_weight: float = 0.0, smooth: float = 1.0):
        super().__init__()
        check_choice("output_activation", activation, ACTIVATIONS)
        if ce_weight < 0:
            raise ValueError(f"ce_weight must be >= 0, not {ce_weight!r}")
        self.activation, self.include_background = activation, include_background
        self.ce_weight, self.smooth = float(ce_weight), float(smooth)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.activation == "sigmoid" else logits.softmax(1)

    def truth(self, target: torch.Tensor, n_channels: int) -> torch.Tensor:
        """The target in the layout of the probabilities."""
        if self.activation == "sigmoid":
            return (target > 0).float().unsqueeze(1)
        return one_hot(target, n_channels)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = logits.float()  # the loss in float32 even under bf16 autocast
        probs = self.probabilities(logits)
        truth = self.truth(target, logits.shape[1])
        if self.activation == "softmax" and not self.include_background and logits.shape[1] > 1:
            probs, truth = probs[:, 1:], truth[:, 1:]
        dice = dice_loss(probs, truth, self.smooth, across_ranks=pool_across_ranks(self))
        terms = {"loss": dice, "dice_loss": dice.detach()}
        if self.ce_weight > 0:
            if self.activation == "sigmoid":
                ce = F.binary_cross_entropy_with_logits(logits, self.truth(target, 1))
            else:
                ce = F.cross_entropy(logits, target.long())
            terms["loss"] = dice + self.ce_weight * ce
            terms["ce"] = ce.detach()
        return terms
