"""Heads of the encoder-only baselines of Table 2 (Taleb et al. 2020): rotation, RPL,
jigsaw and CPC.

All four read the U-Net's bottom encoder tap, averaged over space, as the feature of a
volume or patch (``pooled_bottom``); the decoder is untouched, so these methods transfer
only the encoder. The classifiers follow Taleb's "big_fully" top: Dense 2048 -> Dense
1024 -> classes, each hidden layer with batch norm, ReLU and dropout 0.5; widths are
divided by ``width_divisor`` like the U-Net's, so small CPU models stay small.
"""

from __future__ import annotations

import torch
from torch import nn

from SARCore.errors import ConfigError
from SARCore.models.unet3d import UNet3D

#: Hidden widths of Taleb's classifier head at ``width_divisor == 1``.
CLASSIFIER_WIDTHS = (2048, 1024)
#: CPC code size and GRU width at ``width_divisor == 1`` (Taleb's defaults: 1024, 256).
CPC_CODE_SIZE = 1024
CPC_CONTEXT_SIZE = 256


def _scaled(width: int, width_divisor: int) -> int:
    if isinstance(width_divisor, bool) or not isinstance(width_divisor, int) or width_divisor < 1:
        raise ConfigError(f"width_divisor must be a positive integer, not {width_divisor!r}")
    return max(1, width // width_divisor)


def pooled_bottom(unet: UNet3D, volumes: torch.Tensor) -> torch.Tensor:
    """``(N, C, X, Y, Z)`` -> ``(N, C3)``: the bottom tap averaged over space."""
    return unet.encode(volumes)[-1].mean(dim=(2, 3, 4))


def encode_patches(unet: UNet3D, patches: torch.Tensor) -> torch.Tensor:
    """``(B, K, C, X, Y, Z)`` -> ``(B, K, C3)``, all ``B*K`` patches in one encoder call."""
    batch, count = patches.shape[:2]
    return pooled_bottom(unet, patches.flatten(0, 1)).view(batch, count, -1)


class DenseClassifier(nn.Module):
    """Taleb's classifier top: features ``(B, ...)`` flattened -> logits ``(B, n_classes)``."""

    def __init__(self, in_features: int, n_classes: int, width_divisor: int = 1,
                 dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        previous = in_features
        for width in CLASSIFIER_WIDTHS:
            width = _scaled(width, width_divisor)
            layers += [nn.Linear(previous, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
                       nn.Dropout(dropout)]
            previous = width
        layers.append(nn.Linear(previous, n_classes))
        self.layers = nn.Sequential(*layers)
        self.in_features, self.n_classes = in_features, n_classes

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class CPCHead(nn.Module):
    """CPC's parts above the encoder: code projection, GRU context network, predictors.

    ``codes`` maps pooled patch features to codes; ``predict`` runs the GRU over a
    sequence of context codes and predicts one code per target row with its own linear
    map (as Taleb's ``network_prediction``).
    """

    def __init__(self, in_features: int, n_targets: int, width_divisor: int = 1):
        super().__init__()
        code_size = _scaled(CPC_CODE_SIZE, width_divisor)
        context_size = _scaled(CPC_CONTEXT_SIZE, width_divisor)
        self.project = nn.Linear(in_features, code_size)
        self.context = nn.GRU(code_size, context_size, batch_first=True)
        self.predictors = nn.ModuleList(nn.Linear(context_size, code_size)
                                        for _ in range(n_targets))
        self.code_size = code_size

    def codes(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., in_features)`` -> ``(..., code_size)``."""
        return self.project(features)

    def predict(self, context_codes: torch.Tensor) -> torch.Tensor:
        """``(N, T, code_size)`` context sequences -> ``(N, n_targets, code_size)``.

        The GRU runs in float32 even under bf16 autocast: cuDNN and CPU builds without
        bf16 RNN kernels refuse (or emulate slowly) a bf16 GRU, and it is a small part of
        the step."""
        with torch.autocast(context_codes.device.type, enabled=False):
            _, last = self.context(context_codes.float())
        summary = last[-1]
        return torch.stack([predictor(summary) for predictor in self.predictors], dim=1)
