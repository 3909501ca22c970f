"""A decoder level's upsampling folded into its first convolution: 3.6x less arithmetic.

The decoder's ``ConvTranspose3d(k=2, s=2)`` is linear and feeds a 3x3x3 convolution
directly (the concatenated skip has its own weights), so the two compose into one linear
map from the coarse level to the fine one. Along an axis, a fine voxel ``2i + a`` sees the
coarse voxels ``i - 1, i`` (``a = 0``) or ``i, i + 1`` (``a = 1``): per output parity the
composite is a 2x2x2 convolution on the coarse grid. At paper width's last level this
costs 64 x 129 x 8 multiply-adds per fine voxel instead of 128 x 128 (upsampling) plus
64 x 128 x 27 (convolution): 66 k instead of 237 k, 18 % of the whole network. The
transposed convolution's bias rides on an extra all-ones coarse channel that is zero
outside the volume, as the upsampled tensor is zero-padded there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

#: Per parity a (index) and 3x3x3 tap t (-1, 0, +1): (coarse tap of the 2-wide kernel,
#: sub-position of the transposed convolution's output it reads).
_TAPS = (((0, 1), (1, 0), (1, 1)), ((0, 0), (0, 1), (1, 0)))


def _mapping(dtype: torch.dtype) -> torch.Tensor:
    """``(2, 3, 2, 2)`` one-hot: parity, 3x3x3 tap, coarse tap, sub-position."""
    mapping = torch.zeros(2, 3, 2, 2, dtype=dtype)
    for parity, taps in enumerate(_TAPS):
        for tap, (coarse, sub) in enumerate(taps):
            mapping[parity, tap, coarse, sub] = 1.0
    return mapping


def _compose(conv_weight: torch.Tensor, augmented: torch.Tensor) -> torch.Tensor:
    """``(8 C_out, C_in + 1, 2, 2, 2)`` kernels, parities (a, b, c) in order, of the 3x3x3
    ``conv_weight`` (C_out, C_up, 3, 3, 3) after the transposed convolution ``augmented``
    (C_in + 1, C_up, 2, 2, 2; bias last).

    Why this order: the up channels are contracted first, for every 3x3x3 tap and
    sub-position (C_out x 27 by C_up by (C_in + 1) x 8, one matrix product), and only then
    are the one-hot taps gathered per parity, axis by axis. A single five-operand einsum
    did 2.4x the arithmetic (the taps' zeros included) and cost about 6 CPU-seconds at
    paper width, a third of a ``--fast`` run's set-up; this takes about 2, with the same
    float64 result.
    """
    out, up = conv_weight.shape[:2]
    inputs = augmented.shape[0]
    taps = (conv_weight.reshape(out, up, 27).transpose(1, 2).reshape(out * 27, up)
            @ augmented.reshape(inputs, up, 8).permute(1, 0, 2).reshape(up, inputs * 8))
    taps = taps.reshape(out, 3, 3, 3, inputs, 2, 2, 2)  # o, tap x y z, e, sub p q r
    m = _mapping(conv_weight.dtype)  # (parity, tap, coarse tap, sub-position)
    taps = torch.einsum("oxyzepqr,axip->aoyzeqri", taps, m)
    taps = torch.einsum("aoyzeqri,byjq->abozerij", taps, m)
    taps = torch.einsum("abozerij,czkr->abcoeijk", taps, m)
    return taps.reshape(8 * out, inputs, 2, 2, 2)


class FoldedUp:
    """``ConvTranspose3d(k2, s2)`` then the ``up`` channels' share of a 3x3x3 conv."""

    def __init__(self, up: nn.ConvTranspose3d, conv: nn.Conv3d):
        if up.kernel_size != (2, 2, 2) or up.stride != (2, 2, 2) or up.padding != (0, 0, 0):
            raise ValueError("folding needs ConvTranspose3d(kernel 2, stride 2, padding 0)")
        channels = up.out_channels
        with torch.no_grad():
            up_weight = up.weight.double()  # (C_in, C_up, 2, 2, 2)
            bias = (up.bias.double() if up.bias is not None
                    else up_weight.new_zeros(channels))
            augmented = torch.cat([up_weight, bias[None, :, None, None, None].expand(
                1, channels, 2, 2, 2)])
            conv_weight = conv.weight[:, :channels].double()  # (C_out, C_up, 3, 3, 3)
            weight = _compose(conv_weight, augmented)
        self.weight = weight.to(conv.weight.dtype).contiguous(
            memory_format=torch.channels_last_3d)
        self.out_channels, self.channels_up = conv.out_channels, channels

    def add_to(self, out: torch.Tensor, coarse: torch.Tensor, low: int, start: int) -> None:
        """Add the folded map of ``coarse`` (x range starting at ``low`` of the coarse
        grid; whole along y and z) to ``out``, which covers fine x from ``start``."""
        batch, channels, nx, ny, nz = coarse.shape
        padded = torch.empty((batch, channels + 1, nx + 2, ny + 2, nz + 2), dtype=coarse.dtype,
                             device=coarse.device, memory_format=torch.channels_last_3d)
        padded.zero_()
        padded[:, :channels, 1:-1, 1:-1, 1:-1] = coarse
        padded[:, channels, 1:-1, 1:-1, 1:-1] = 1.0
        weight = self.weight.to(coarse.dtype) if self.weight.dtype != coarse.dtype \
            else self.weight
        parts = F.conv3d(padded, weight)  # (B, 8 K, nx + 1, ny + 1, nz + 1)
        del padded
        count = self.out_channels
        stop = start + out.shape[2]
        for index, (a, b, c) in enumerate((a, b, c) for a in (0, 1) for b in (0, 1)
                                          for c in (0, 1)):
            first = start + (a - start) % 2  # first fine x of parity a in [start, stop)
            number = len(range(first, stop, 2))
            if number == 0:
                continue
            i = (first - a) // 2 - low + a
            block = parts[:, index * count:(index + 1) * count]
            out[:, :, first - start::2, b::2, c::2] += block[:, :, i:i + number, b:b + ny,
                                                             c:c + nz]
