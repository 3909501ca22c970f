"""MG's flip augmentation: up to ``max_flips`` times, each with ``prob``, flip a random axis.

MG's loop (``data_augmentation``) stops at the first failed draw, so a sample gets ``k``
flips with probability ``prob**k * (1 - prob)`` (``prob**max_flips`` for the last). The
flips change input *and* target alike; the restoration target is the flipped cube.

Flipping the same axis twice cancels, so applying the parameters only needs the parity
of the flips per axis. The axis is drawn among the three spatial axes ``x, y, z`` as the
method spec says; MG's own code calls ``np.flip(x[n], axis=random.choice([0, 1, 2]))``
on a ``(1, X, Y, Z)`` sample, i.e. among channel (a no-op), x and y.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from SARCore.corruptions.buffers import empty_like_batch
from SARCore.corruptions.params import TensorParams
from SARCore.corruptions.rng import RandomSource, leading_successes

SPATIAL_AXES = 3


@dataclasses.dataclass(frozen=True)
class FlipParams(TensorParams):
    """Flips of one batch: ``count (B,)`` flips made, ``axes (B, max_flips)`` in {0, 1, 2}.

    Only the first ``count[b]`` entries of ``axes[b]`` are used.
    """

    count: Tensor
    axes: Tensor

    def axis_parity(self) -> Tensor:
        """``(B, 3)`` bool: True where an axis was flipped an odd number of times."""
        used = torch.arange(self.axes.shape[1], device=self.axes.device) < self.count[:, None]
        hits = (self.axes[:, :, None] == torch.arange(SPATIAL_AXES, device=self.axes.device))
        return ((hits & used[:, :, None]).sum(dim=1) % 2).bool()


def sample_flip_params(batch_size: int, prob: float, max_flips: int, rng: RandomSource
                       ) -> FlipParams:
    """Draw the flips of ``batch_size`` samples."""
    count = leading_successes(rng.uniform(batch_size, max_flips), prob)
    axes = rng.integers(0, SPATIAL_AXES - 1, batch_size, max_flips)
    return FlipParams(count, axes)


def apply_flip(batch: Tensor, params: FlipParams) -> Tensor:
    """Flipped copy of ``batch (B, C, X, Y, Z)``; the input is left untouched.

    On a CPU one ``flip`` copy per sample (the parity read costs nothing there);
    elsewhere one gather over the batch whose per-axis indices run backwards where the
    parity says, so nothing is read back to the host."""
    if batch.device.type != "cpu":
        return _gather_flipped(batch, params.axis_parity().to(batch.device))
    out = empty_like_batch(batch)
    parity = params.axis_parity().tolist()
    for index, flips in enumerate(parity):
        dims = [axis + 1 for axis, odd in enumerate(flips) if odd]  # a sample is (C, X, Y, Z)
        out[index] = batch[index].flip(dims) if dims else batch[index]
    return out


def _gather_flipped(batch: Tensor, parity: Tensor) -> Tensor:
    """``batch`` read through per-sample axis indices (reversed where ``parity (B, 3)``)."""
    sizes, device = batch.shape, batch.device
    index = [torch.arange(sizes[0], device=device).view(-1, 1, 1, 1, 1),
             torch.arange(sizes[1], device=device).view(1, -1, 1, 1, 1)]
    for axis in range(SPATIAL_AXES):
        n = sizes[axis + 2]
        pos = torch.arange(n, device=device)
        view = [sizes[0], 1, 1, 1, 1]
        view[axis + 2] = n
        index.append(torch.where(parity[:, axis, None], n - 1 - pos, pos).view(view))
    return batch[tuple(index)]
