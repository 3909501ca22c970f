"""The MG U-Net's exact forward pass over a large window, one stage and one slab at a time.

A plain forward keeps every full-resolution activation of the window alive at once (about
1.6 KB per voxel at paper width, 64 channels), so a memory budget allows only small
windows, and small windows overlap: BraTS at 64 x 64 x 32 evaluates 2.5 voxels per voxel.
Here the network runs stage by stage (an encoder level, a decoder level) over the whole
window, each stage in slabs along the first spatial axis (x). Only the tensors later stages
need stay whole; the full-resolution skip (level 0's output, 64 channels) is not kept but
recomputed slab by slab when the last decoder level needs it (6 % more arithmetic). What
stays alive, in fp32 bytes per window voxel with level-0 width ``c`` (64 at paper width)::

    level 1 skip and level 1 decoder output    2 x 2c / 8 x 4   (64 B each at c = 64)
    level 0 pooled output (until level 1 ran)       c / 8 x 4   (32 B)
    levels 2-3 (skips, pooled, decoder output)  about c / 8 x 4 (30 B)
    logits                                          K x 4

at most 2.25 c bytes per voxel at once (144 B at paper width; level 0's pooled output is
freed before the decoder runs) against about 25 c for the plain forward, plus the slab
working memory, which the caller fixes (``work_bytes``). The result equals
the plain forward's up to float rounding: each convolution is evaluated on its slab plus
the halo it needs (one voxel per 3x3x3 convolution), with zero padding only where the
whole window has its border, so a BraTS volume fits in one window: no overlap, no window
borders, no blending.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from SARCore.inference.upfold import FoldedUp
from SARCore.models import UNet3D

#: Bytes per voxel and level-0 channel of the tensors kept whole at their peak (level 1's
#: skip, level 2's output and level 1's output: 2.25 c), with margin.
STORED_BYTES_PER_VOXEL_CHANNEL = 2.4
#: Bytes per voxel and output channel outside the network: logits, probabilities, the
#: sliding window's accumulators and result (float32, float32, float32, float16).
OUTPUT_BYTES_PER_VOXEL_CHANNEL = 4 + 4 + 8 + 2
#: Working bytes per slab voxel and channel of a stage's widest input (its tensors at once:
#: upsampled + skip + their concatenation + two convolution outputs), fp32.
WORK_BYTES_PER_VOXEL_CHANNEL = 4 * 2.7
#: Voxels of halo per side a stage needs on its input at its own resolution (two convs).
HALO = 2


def stored_bytes(net: UNet3D, window: Sequence[int]) -> float:
    """Bytes of whole-window tensors the streamed forward keeps (batch of one)."""
    per_voxel = (net.encoder_channels[0] * STORED_BYTES_PER_VOXEL_CHANNEL
                 + net.out_channels * OUTPUT_BYTES_PER_VOXEL_CHANNEL + 8 * net.in_channels)
    return per_voxel * math.prod(window)


def slab_bytes(net: UNet3D, window: Sequence[int], planes: int) -> float:
    """Working bytes of one slab of ``planes`` x-planes of the full-resolution stages."""
    widest = net.encoder_channels[0] + net.encoder_channels[1]
    return WORK_BYTES_PER_VOXEL_CHANNEL * widest * (planes + 2 * HALO) * window[1] * window[2]


def streamed_bytes(net: UNet3D, window: Sequence[int], work_bytes: float) -> float:
    """Peak activation bytes of one window: what stays whole plus the slab working memory."""
    return stored_bytes(net, window) + min(work_bytes, slab_bytes(net, window, window[0]))


class StreamedUNet:
    """Callable ``(B, C, X, Y, Z) -> (B, K, X, Y, Z)`` logits of a (fused) :class:`UNet3D`.

    ``work_bytes`` bounds one slab's working memory; slabs are at least 2 planes thick.
    """

    def __init__(self, net: UNet3D, work_bytes: float):
        self.net, self.work_bytes = net, float(work_bytes)
        for module in net.modules():
            if isinstance(module, nn.Conv3d) and module.kernel_size == (3, 3, 3):
                if module.padding != (1, 1, 1) or module.stride != (1, 1, 1) or module.groups != 1:
                    raise ValueError("streamed forward needs 3x3x3 convolutions with padding 1")
        self._folds = {id(block): FoldedUp(block.up, block.convs[0][0]) for block in net.decoder}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or any(side % 8 for side in x.shape[2:]):
            raise ValueError(f"expected (B, C, X, Y, Z) with sides multiples of 8, got "
                             f"{tuple(x.shape)}")
        net = self.net
        pooled = self._encoder(0, x, keep_tap=False)[1]
        taps = []
        for level in (1, 2, 3):
            tap, next_pooled = self._encoder(level, pooled, keep_tap=True)
            taps.append(tap)
            pooled = next_pooled
        del pooled
        lower = taps.pop()  # level 3
        for block in net.decoder[:2]:
            lower = self._decoder(block, lower, taps.pop(), None)
        return self._decoder(net.decoder[2], lower, None, x)

    # -- stages ---------------------------------------------------------------------------

    def _step(self, shape: Sequence[int], channels: int) -> int:
        """Slab thickness (even, >= 2) for a stage on ``shape`` whose widest input has
        ``channels`` channels."""
        per_plane = WORK_BYTES_PER_VOXEL_CHANNEL * channels * shape[-2] * shape[-1] * shape[0]
        planes = int(self.work_bytes // max(per_plane, 1.0)) - 2 * HALO
        return max(2, planes - planes % 2)

    def _encoder(self, level: int, inputs: torch.Tensor, keep_tap: bool
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Encoder ``level`` over the whole input: its output (if kept) and its 2x max-pool."""
        blocks = self.net.encoder[level]
        size = inputs.shape[2]
        channels = _out_channels(blocks)
        step = self._step((inputs.shape[0], *inputs.shape[3:]), channels * 2)
        tap = pooled = None
        for start in range(0, size, step):
            stop = min(size, start + step)
            out = _level_range(blocks, inputs, start, stop)
            if keep_tap:
                if tap is None:
                    tap = _whole(out, size, inputs.shape[3:])
                tap[:, :, start:stop] = out
            if level < 3:
                part = F.max_pool3d(out, 2)
                if pooled is None:
                    pooled = _whole(part, size // 2, part.shape[3:])
                pooled[:, :, start // 2:stop // 2] = part
        return tap, pooled

    def _decoder(self, block: nn.Module, lower: torch.Tensor, skip: torch.Tensor | None,
                 image: torch.Tensor | None) -> torch.Tensor:
        """One decoder level; level 0 (``skip`` None) recomputes its skip from ``image``
        and ends with the head."""
        size = lower.shape[2] * 2
        channels = _out_channels(block.convs)
        last = skip is None
        widest = block.up.out_channels + channels
        step = self._step((lower.shape[0], lower.shape[3] * 2, lower.shape[4] * 2), widest)
        result = None
        fold = self._folds[id(block)]
        leaves = _leaves(block.convs[0])
        first, after = leaves[0], leaves[1:]
        for start in range(0, size, step):
            stop = min(size, start + step)
            low, high = max(0, start // 2 - 1), min(lower.shape[2], stop // 2 + 1)
            lo, hi = 2 * low, 2 * high
            if last:
                skip_part = _level_range(self.net.encoder[0], image, lo, hi)
            else:
                skip_part = skip[:, :, lo:hi]  # type: ignore[index]
            out, lo, hi = _conv(first, skip_part, lo, hi, size, skip_from=fold.channels_up)
            del skip_part
            fold.add_to(out, lower[:, :, low:high], low, lo)
            for module in after:
                out = module(out)
            out, lo, hi = _run_level(block.convs[1:], out, lo, hi, size)
            out = out[:, :, start - lo:stop - lo]
            if last:
                out = self.net.head(out)
            if result is None:
                result = _whole(out, size, out.shape[3:])
            result[:, :, start:stop] = out
        return result  # type: ignore[return-value]


def _out_channels(blocks: nn.Module) -> int:
    return [m for m in blocks.modules() if isinstance(m, nn.Conv3d)][-1].out_channels


def _whole(part: torch.Tensor, size: int, shape: Sequence[int]) -> torch.Tensor:
    """Empty channels-last ``(B, C, size, *shape)`` tensor of ``part``'s dtype and device."""
    return torch.empty((part.shape[0], part.shape[1], size, *shape), dtype=part.dtype,
                       device=part.device, memory_format=torch.channels_last_3d)


def _level_range(blocks: nn.Module, inputs: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Output ``[start, stop)`` along x of ``blocks`` (3x3x3 conv blocks) over ``inputs``."""
    size = inputs.shape[2]
    count = sum(1 for m in blocks.modules() if isinstance(m, nn.Conv3d))
    lo, hi = max(0, start - count), min(size, stop + count)
    out, lo, hi = _run_level(blocks, inputs[:, :, lo:hi], lo, hi, size)
    return out[:, :, start - lo:stop - lo]


def _run_level(blocks: nn.Module, x: torch.Tensor, lo: int, hi: int, size: int
               ) -> tuple[torch.Tensor, int, int]:
    """Run conv blocks on ``x`` covering ``[lo, hi)`` of an axis of ``size``; each conv
    pads zeros only at the axis's true ends, so the covered range shrinks by one per side
    elsewhere. Returns the output and the range it covers."""
    for module in _leaves(blocks):
        if isinstance(module, nn.Conv3d):
            x, lo, hi = _conv(module, x, lo, hi, size)
        else:
            x = module(x)
    return x, lo, hi


def _leaves(blocks: nn.Module) -> list[nn.Module]:
    return [m for m in blocks.modules() if not list(m.children())]


def _conv(conv: nn.Conv3d, x: torch.Tensor, lo: int, hi: int, size: int, skip_from: int = 0
          ) -> tuple[torch.Tensor, int, int]:
    """``conv`` (its input channels from ``skip_from`` on) over ``x`` covering ``[lo, hi)``."""
    pad_lo, pad_hi = int(lo == 0), int(hi == size)
    weight = conv.weight[:, skip_from:] if skip_from else conv.weight
    if pad_lo and pad_hi:  # the slab is the whole axis (e.g. --fast): no padded copy
        return F.conv3d(x, weight, conv.bias, padding=1), lo, hi
    if pad_lo or pad_hi:
        parts = [x]
        plane = x[:, :, :1]
        if pad_lo:
            parts.insert(0, torch.zeros_like(plane))
        if pad_hi:
            parts.append(torch.zeros_like(plane))
        x = torch.cat(parts, dim=2)
    out = F.conv3d(x, weight, conv.bias, padding=(0, 1, 1))
    return out, lo + 1 - pad_lo, hi - 1 + pad_hi

