"""The Models Genesis 3D U-Net (batch norm), with every encoder level exposed.

Encoder levels for a ``(B, 1, 64, 64, 32)`` input at full width::

    level 0:   1 ->  32 ->  64   64@64x64x32   (then MaxPool3d(2))
    level 1:  64 ->  64 -> 128  128@32x32x16
    level 2: 128 -> 128 -> 256  256@16x16x8
    level 3: 256 -> 256 -> 512  512@8x8x4      (bottom: Scale-Aware head input)

The decoder upsamples with ``ConvTranspose3d(k=2, s=2)`` keeping channels, concatenates
the skip and applies two conv blocks. ``forward`` always returns logits: restoration
applies a sigmoid (MSE on it, as MG), segmentation a sigmoid or softmax.

Normalisation: standard ``BatchNorm3d`` (running statistics in ``eval()``), not MG's
always-batch-statistics variant, so single-window inference is well defined.
``width_divisor`` divides every width (4 or 8 make CPU demos and tests fast).
"""

from __future__ import annotations

import torch
from torch import nn

from SARCore.errors import ConfigError

#: (mid, out) channels of the encoder levels at full width; level i takes level i-1's out.
ENCODER_WIDTHS = ((32, 64), (64, 128), (128, 256), (256, 512))


class ConvBlock(nn.Sequential):
    """Conv3d(k3, p1) -> BatchNorm3d -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Transposed-conv upsampling, skip concatenation, two conv blocks."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose3d(in_channels, in_channels, kernel_size=2, stride=2)
        self.convs = nn.Sequential(ConvBlock(in_channels + skip_channels, out_channels),
                                   ConvBlock(out_channels, out_channels))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat([self.up(x), skip], dim=1))


class UNet3D(nn.Module):
    """MG 3D U-Net. ``encode`` gives the 4 level taps; ``forward`` gives logits."""

    architecture = "mg_unet3d"

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width_divisor: int = 1):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("width_divisor", width_divisor)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")
        if 32 % width_divisor:
            raise ConfigError(f"width_divisor must divide 32 (1, 2, 4, 8, 16, 32), not {width_divisor}")
        self.in_channels, self.out_channels, self.width_divisor = in_channels, out_channels, width_divisor
        widths = [(mid // width_divisor, out // width_divisor) for mid, out in ENCODER_WIDTHS]
        self.encoder_channels: tuple[int, ...] = tuple(out for _, out in widths)
        levels, previous = [], in_channels
        for mid, out in widths:
            levels.append(nn.Sequential(ConvBlock(previous, mid), ConvBlock(mid, out)))
            previous = out
        self.encoder = nn.ModuleList(levels)
        self.pool = nn.MaxPool3d(2)
        c0, c1, c2, c3 = self.encoder_channels
        self.decoder = nn.ModuleList([UpBlock(c3, c2, c2), UpBlock(c2, c1, c1), UpBlock(c1, c0, c0)])
        self.head = nn.Conv3d(c0, out_channels, kernel_size=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, C, X, Y, Z)`` -> 4 taps, level i at ``(X, Y, Z) / 2**i``; sides must divide by 8."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, X, Y, Z), got {tuple(x.shape)}")
        if any(side % 8 for side in x.shape[2:]):
            raise ValueError(f"input sides must be multiples of 8, got {tuple(x.shape[2:])}")
        taps = []
        for index, level in enumerate(self.encoder):
            x = level(x if index == 0 else self.pool(x))
            taps.append(x)
        return taps

    def decode(self, taps: list[torch.Tensor]) -> torch.Tensor:
        x = taps[-1]
        for block, skip in zip(self.decoder, reversed(taps[:-1])):
            x = block(x, skip)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the encoder's weights (what encoder-only baselines transfer)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith("encoder.")}
