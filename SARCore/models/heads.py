"""Heads on top of the U-Net encoder: Scale-Aware (SA) head and MIAL discriminator.

The min-max game of MIAL (paper eq. 3) is played with a gradient-reversal layer: the
discriminator minimises its cross-entropy while the reversed gradient makes the encoder
maximise it. One forward/backward per step (alternating updates would need a second
encoder pass), it is exact under DDP, and the separate learning rates of the paper
(U-Net 1.0, MIAL 0.001) still apply through separate optimizer parameter groups.
"""

from __future__ import annotations

import torch
from torch import nn


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``-scale`` backward."""
    return _ReverseGradient.apply(x, scale)


class ClassifierHead(nn.Module):
    """Global average pooling, then FC -> ReLU -> FC (the SA head's shape)."""

    def __init__(self, in_channels: int, n_classes: int, hidden: int = 1024, dropout: float = 0.0):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(in_channels, hidden), nn.ReLU(inplace=True),
                                nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, X, Y, Z)`` -> logits ``(B, n_classes)``."""
        return self.fc(self.pool(features))


class ScaleHead(ClassifierHead):
    """SA module: predicts the scale class (0 large, 1 medium, 2 small) from the bottom tap.

    The hidden width 1024 follows MG's classification example (the paper does not say).
    """

    def __init__(self, in_channels: int, hidden: int = 1024, n_scales: int = 3):
        super().__init__(in_channels, n_scales, hidden)


class ModalityDiscriminator(nn.Module):
    """MIAL module: three conv layers densely fed by the encoder levels, GAP, two FCs.

    conv i (stride 2) takes ``cat(previous, tap_i)`` for levels 0-2, so its output has the
    resolution of level i+1; the bottom tap joins before pooling. Output: one logit per
    sample, positive = CT (label 0 is CT, so the target is ``modality == CT``).
    """

    def __init__(self, encoder_channels: tuple[int, ...], width: int = 64, hidden: int = 256):
        super().__init__()
        convs, previous = [], 0
        for tap_channels in encoder_channels[:3]:
            convs.append(nn.Sequential(
                nn.Conv3d(previous + tap_channels, width, kernel_size=3, stride=2, padding=1),
                nn.BatchNorm3d(width), nn.LeakyReLU(0.2, inplace=True)))
            previous = width
        self.convs = nn.ModuleList(convs)
        self.classifier = ClassifierHead(width + encoder_channels[3], 1, hidden)

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        """4 encoder taps -> CT logit ``(B,)``."""
        x = self.convs[0](taps[0])
        for conv, tap in zip(self.convs[1:], taps[1:3]):
            x = conv(torch.cat([x, tap], dim=1))
        return self.classifier(torch.cat([x, taps[3]], dim=1)).squeeze(1)
