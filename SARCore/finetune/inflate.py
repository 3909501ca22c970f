"""A single-channel pre-trained encoder for a multi-sequence model: inflate the first conv.

SAR pre-trains on one image at a time (one channel), while BraTS-style models take
several co-registered sequences (FLAIR, T1c, ...). The first convolution's kernel is
repeated over the new input channels and divided by their number, so that a scan whose
sequences were all equal would give exactly the pre-trained features; fine-tuning then
learns how the sequences differ. Every other layer transfers unchanged.
"""

from __future__ import annotations

import torch


def inflate_input_channels(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                           in_channels: int) -> list[str]:
    """Replace, in ``source``, each 1-input-channel kernel that ``target`` needs with
    ``in_channels`` inputs by its inflated copy; returns the names inflated."""
    if in_channels <= 1:
        return []
    inflated = []
    for name, wanted in target.items():
        have = source.get(name)
        if (have is None or have.ndim != 5 or wanted.ndim != 5 or have.shape[1] != 1
                or wanted.shape[1] != in_channels or have.shape[0] != wanted.shape[0]
                or have.shape[2:] != wanted.shape[2:]):
            continue
        source[name] = have.repeat(1, in_channels, 1, 1, 1) / in_channels
        inflated.append(name)
    return inflated
