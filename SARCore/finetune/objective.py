"""One fine-tuning step's loss for the shared training loop.

``SegmentationObjective(batch, generator)`` returns ``{"loss", "dice_loss"[, "ce"],
"dice"}``: ``loss`` is backpropagated; ``dice`` is the hard (thresholded/argmax) Dice of
the batch's patches, pooled over the batch and averaged over foreground classes, only
for the metrics log. The U-Net sits under the attribute ``unet`` so the objective's
state-dict names (``unet.encoder...``) are the model-file names.
"""

from __future__ import annotations

import torch
from torch import nn

from SARCore.losses.dice import SegmentationLoss, one_hot, pool_across_ranks, soft_dice
from SARCore.models.unet3d import UNet3D


def hard_dice(logits: torch.Tensor, target: torch.Tensor, activation: str,
              across_ranks: bool = False) -> torch.Tensor:
    """Batch-pooled Dice of the predicted mask(s); 1 when truth and prediction are empty."""
    if activation == "sigmoid":
        pred = (logits > 0).float()
        truth = (target > 0).float().unsqueeze(1)
    else:
        n = logits.shape[1]
        pred, truth = one_hot(logits.argmax(1), n)[:, 1:], one_hot(target, n)[:, 1:]
    return soft_dice(pred, truth, smooth=1e-6, across_ranks=across_ranks).mean()


class SegmentationObjective(nn.Module):
    """Dice (or Dice + CE) loss of a U-Net's logits against the patch labels."""

    def __init__(self, unet: UNet3D, loss: SegmentationLoss):
        super().__init__()
        self.unet = unet
        self.loss = loss

    def forward(self, batch: dict[str, torch.Tensor],
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        logits = self.unet(batch["image"])
        terms = self.loss(logits, batch["label"])
        with torch.no_grad():
            terms["dice"] = hard_dice(logits.float(), batch["label"], self.loss.activation,
                                      pool_across_ranks(self))
        return terms
