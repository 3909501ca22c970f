"""Losses of the fine-tuning stage (pre-training losses live with their objectives)."""

from SARCore.losses.dice import SegmentationLoss, dice_loss, one_hot, soft_dice

__all__ = ["SegmentationLoss", "dice_loss", "one_hot", "soft_dice"]
