"""The training loop shared by pre-training and fine-tuning.

A stage supplies an *objective* (an ``nn.Module`` whose ``forward(batch, generator)``
returns a dict of loss terms with a ``"loss"`` key) and datasets; the loop owns devices,
DDP, checkpoints, resume, LR scheduling, early stopping, metrics and progress.
"""

from SARCore.training.loop import LoopConfig, TrainResult, train

__all__ = ["LoopConfig", "TrainResult", "train"]
