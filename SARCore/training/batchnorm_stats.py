"""Batch-norm statistics recomputed for the current weights before a model is judged.

Batch norm keeps running means and variances as an exponential average (momentum 0.1)
over training batches, each taken with the weights of its own step. When the weights move
fast - a short run, or SGD at the paper's learning rate 1.0 - that average describes
weights long gone, and eval-mode outputs drift far from train-mode ones: after 20 SAR steps
the bottom encoder tap was 28x larger in eval mode, and the validation loss read 81.7
against a training loss of 2.1. Validation, the learning-rate schedule, early stopping and
the "best" model file all read that number.

So before each validation the loop re-estimates the statistics with the weights fixed:
running statistics reset, a few training batches forwarded in train mode without
gradients, averaged with equal weight (``momentum=None``), the usual momentum restored
("precise BN", Wu & Johnson 2021). With the same recalibration the validation loss of that
run read 2.26. Under DDP every rank forwards the same number of batches, so synchronised
batch norm keeps the statistics identical on all ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

_BatchNorm = nn.modules.batchnorm._BatchNorm


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """The batch-norm layers of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Any], n_batches: int,
                          forward: Callable[[Any], Any]) -> int:
    """Replace the running statistics of ``model``'s batch norms by their equal-weight
    average over the first ``n_batches`` of ``batches`` (``forward(batch)`` runs one);
    returns the number of batches used (0: nothing to do, statistics untouched)."""
    layers = batchnorm_layers(model)
    if not layers or n_batches <= 0:
        return 0
    momenta = [layer.momentum for layer in layers]
    was_training = model.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    model.train()
    used = 0
    try:
        for batch in batches:
            if used == n_batches:
                break
            forward(batch)
            used += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    return used
