"""Models Genesis ``generate_pair`` for a whole batch: (corrupted input, restoration target).

Per sample, in MG's order: flip (input and target), local pixel shuffling, the Bezier
intensity transform, then in- or out-painting. Each transform is a pair, a sampler that
draws parameters for the whole batch from one ``torch.Generator`` and a deterministic
``apply_*`` that takes them, so a corruption can be replayed, inspected or tested::

    corruption = ModelsGenesisCorruption()
    corrupted, target = corruption(cubes, generator)           # training
    result = corruption.corrupt(cubes, generator)              # + params and record
    params = corruption.sample_params(cubes.shape, generator)  # replay:
    corrupted, target = corruption.apply(cubes, params)

Devices: the batch may live on any device. Parameters are drawn on the generator's
device (the batch's when no generator is given) and moved to the batch: pass a
generator on the batch's device for speed on a GPU, or a CPU generator to get the very
same corruption on every machine (see :mod:`SARCore.corruptions.rng`).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from SARCore.corruptions.config import CorruptionConfig
from SARCore.corruptions.flip import FlipParams, apply_flip, sample_flip_params
from SARCore.corruptions.local_shuffle import (
    ShuffleParams,
    apply_shuffle,
    max_block_sides,
    sample_shuffle_params,
)
from SARCore.corruptions.nonlinear import NonlinearParams, apply_nonlinear, sample_nonlinear_params
from SARCore.corruptions.painting import (
    INNER,
    OUTER,
    PaintParams,
    apply_paint,
    check_paintable,
    sample_paint_params,
)
from SARCore.corruptions.params import TensorParams
from SARCore.corruptions.rng import RandomSource
from SARCore.errors import DataError

#: How far outside [0, 1] input values may stray (resampling overshoot) before it is an error.
RANGE_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class CorruptionParams(TensorParams):
    """Everything drawn for one batch; ``apply`` turns it into the same corruption again."""

    flip: FlipParams
    shuffle: ShuffleParams
    nonlinear: NonlinearParams
    paint: PaintParams


@dataclasses.dataclass(frozen=True)
class CorruptionRecord:
    """Which transforms each sample received: ``(B,)`` tensors (``flip_count`` int64, rest bool)."""

    flip_count: Tensor
    shuffled: Tensor
    nonlinear: Tensor
    inverted: Tensor
    inner_painted: Tensor
    outer_painted: Tensor

    @classmethod
    def from_params(cls, params: CorruptionParams) -> CorruptionRecord:
        mode = params.paint.mode
        return cls(params.flip.count.clone(), params.shuffle.apply.clone(),
                   params.nonlinear.apply.clone(), params.nonlinear.apply & params.nonlinear.invert,
                   mode == INNER, mode == OUTER)


@dataclasses.dataclass(frozen=True)
class CorruptionResult:
    """``corrupted`` and ``target`` ``(B, 1, X, Y, Z)``, the params drawn and their record."""

    corrupted: Tensor
    target: Tensor
    params: CorruptionParams
    record: CorruptionRecord


def validate_batch(batch: object) -> Tensor:
    """The batch clamped to [0, 1]; clear errors for anything MG's corruptions cannot take."""
    if not isinstance(batch, Tensor):
        raise TypeError(f"corruptions take a torch.Tensor batch, not {type(batch).__name__}")
    if batch.ndim != 5 or batch.shape[1] != 1:
        raise ValueError(f"corruptions take a batch of shape (B, 1, X, Y, Z), got "
                         f"{tuple(batch.shape)}")
    if not batch.is_floating_point():
        raise TypeError(f"corruptions take float cubes in [0, 1], got dtype {batch.dtype}")
    spatial = tuple(batch.shape[2:])
    max_block_sides(spatial)
    check_paintable(spatial)
    if batch.shape[0] == 0:
        return batch
    if batch.device.type != "cpu":
        # Reading the range back would stall the GPU's queue every batch; cube stores
        # and preprocessing already hold [0, 1] data, so clamp the resampling overshoot.
        return batch.clamp(0, 1)
    low, high = (float(v) for v in torch.aminmax(batch))
    if not (low >= -RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE):
        raise DataError(f"cube values must lie in [0, 1], found [{low:.4g}, {high:.4g}]",
                        hint="normalise cubes first (CT: clip [-1000, 1000] HU, "
                             "MRI: clip [0, 4000], then scale to [0, 1])")
    return batch.clamp(0, 1) if low < 0 or high > 1 else batch


class ModelsGenesisCorruption:
    """MG's four corruptions for batches ``(B, 1, X, Y, Z)`` of float cubes in [0, 1]."""

    def __init__(self, config: CorruptionConfig | None = None) -> None:
        self.config = config if config is not None else CorruptionConfig()

    def sample_params(self, shape: tuple[int, ...] | torch.Size,
                      generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> CorruptionParams:
        """Draw a batch's corruption; parameters live on the generator's device (else
        ``device``)."""
        c = self.config
        shape = tuple(shape)
        rng = RandomSource(generator, device)
        return CorruptionParams(
            flip=sample_flip_params(shape[0], c.flip_prob, c.max_flips, rng),
            shuffle=sample_shuffle_params(shape, c.shuffle_prob, c.shuffle_blocks, rng,
                                          c.shuffle_pool),
            nonlinear=sample_nonlinear_params(shape[0], c.nonlinear_prob, c.invert_prob, rng),
            paint=sample_paint_params(shape, c.paint_prob, c.outer_paint_prob,
                                      c.inner_boxes_max, c.outer_boxes_max,
                                      c.box_continue_prob, rng))

    def apply(self, batch: Tensor, params: CorruptionParams) -> tuple[Tensor, Tensor]:
        """``(corrupted, target)`` for given parameters (deterministic)."""
        return self._apply_checked(validate_batch(batch), params)

    def _apply_checked(self, batch: Tensor, params: CorruptionParams) -> tuple[Tensor, Tensor]:
        params = params.to(batch.device)
        target = apply_flip(batch, params.flip)
        corrupted = apply_shuffle(target, params.shuffle)
        apply_nonlinear(corrupted, params.nonlinear, self.config.bezier_points, inplace=True)
        apply_paint(corrupted, params.paint, inplace=True)
        return corrupted, target

    def corrupt(self, batch: Tensor, generator: torch.Generator | None = None
                ) -> CorruptionResult:
        """Draw and apply; also returns the parameters and which transforms each sample got."""
        batch = validate_batch(batch)
        params = self.sample_params(batch.shape, generator, batch.device)
        corrupted, target = self._apply_checked(batch, params)
        return CorruptionResult(corrupted, target, params,
                                CorruptionRecord.from_params(params.to(batch.device)))

    def __call__(self, batch: Tensor, generator: torch.Generator | None = None
                 ) -> tuple[Tensor, Tensor]:
        """``(corrupted, target)``: the restoration pair MG's ``generate_pair`` yields."""
        result = self.corrupt(batch, generator)
        return result.corrupted, result.target
