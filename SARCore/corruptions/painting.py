"""MG's in-painting and out-painting: boxes of uniform noise, or noise around boxes.

* Inner (``image_in_painting``): while ``random() < 0.95`` and at most 5 times, a box with
  side per axis uniform in ``[dim//6, dim//3]`` is filled with uniform noise.
* Outer (``image_out_painting``): the whole cube becomes uniform noise, then one box of
  the original, plus up to 4 more while ``random() < 0.95``, is restored; box side per
  axis ``dim - uniform[3*dim//7, 4*dim//7]``.

Box corners are uniform in ``[3, dim - side - 3]`` (MG keeps 3 voxels from the border).
Overlaps need no order: inner boxes all receive i.i.d. noise and outer boxes all restore
the same original, so a sample's result is noise inside (inner) or outside (outer) the
union of its boxes. The parameters carry ``noise (P, C, X, Y, Z)`` for the P painted
samples (batch order): the whole cube for outer painting; for inner painting only the
boxes are drawn (zeros elsewhere, never read), and boxes take the noise at their own
position.

Devices (no host reads): P and the boxes are known only after reading the draws back,
so the torch backend (a generator off the CPU) draws ``noise (B, C, X, Y, Z)``, a whole
cube for every sample, and off the CPU :func:`apply_paint` builds each sample's box
union as a mask and selects noise or original with one ``where``. The law of the
painted values is the same; only which uniforms are drawn differs.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from SARCore.corruptions.buffers import empty_batch
from SARCore.corruptions.params import TensorParams
from SARCore.corruptions.rng import RandomSource, leading_successes

NONE, INNER, OUTER = 0, 1, 2
BORDER = 3


def inner_side_range(dim: int) -> tuple[int, int]:
    """Inclusive range of an inner box's side along an axis of ``dim`` voxels."""
    return dim // 6, dim // 3


def outer_side_range(dim: int) -> tuple[int, int]:
    """Inclusive range of a restored (outer-painting) box's side."""
    return dim - 4 * dim // 7, dim - 3 * dim // 7


def check_paintable(spatial: tuple[int, ...]) -> None:
    """Raise ``ValueError`` when a box of the largest side cannot fit with MG's margin."""
    for dim in spatial:
        largest = max(inner_side_range(dim)[1], outer_side_range(dim)[1])
        if inner_side_range(dim)[0] < 1 or dim - largest - BORDER < BORDER:
            raise ValueError(f"painting needs every spatial side to be at least 14 voxels, "
                             f"got {tuple(spatial)}")


@dataclasses.dataclass(frozen=True)
class PaintParams(TensorParams):
    """Painting of one batch.

    ``mode (B,)`` int64 in {NONE, INNER, OUTER}; ``lower``/``upper (B, K, 3)`` int64 box
    corners ``[x, y, z]`` (upper excluded); ``valid (B, K)`` bool, which boxes exist;
    ``noise (P, C, X, Y, Z)`` uniform in [0, 1) for the painted samples in batch order.
    """

    mode: Tensor
    lower: Tensor
    upper: Tensor
    valid: Tensor
    noise: Tensor


def _box_counts(batch_size: int, mode: Tensor, inner_max: int, outer_max: int,
                continue_prob: float, rng: RandomSource) -> Tensor:
    """MG's loops: inner makes 0..inner_max boxes, outer 1 + 0..outer_max-1 boxes."""
    k = max(inner_max, outer_max)
    more = leading_successes(rng.uniform(batch_size, k), continue_prob)
    inner = more.clamp(max=inner_max)
    outer = 1 + more.clamp(max=outer_max - 1)
    count = torch.where(mode == INNER, inner, outer)
    return torch.where(mode == NONE, torch.zeros_like(count), count)


def _box_sides(mode: Tensor, k: int, spatial: tuple[int, ...], rng: RandomSource) -> Tensor:
    """``(B, K, 3)`` sides: outer-painting ranges for OUTER samples, inner ranges otherwise."""
    inner = torch.tensor([inner_side_range(d) for d in spatial], device=mode.device)
    outer = torch.tensor([outer_side_range(d) for d in spatial], device=mode.device)
    ranges = torch.where((mode == OUTER)[:, None, None], outer, inner)  # (B, 3, 2)
    low, high = ranges[:, None, :, 0], ranges[:, None, :, 1]
    return rng.integers(low.expand(-1, k, -1), high.expand(-1, k, -1), mode.shape[0], k, 3)


def sample_paint_params(shape: tuple[int, ...], paint_prob: float, outer_prob: float,
                        inner_max: int, outer_max: int, continue_prob: float,
                        rng: RandomSource) -> PaintParams:
    """Draw the painting of a batch of ``shape (B, C, X, Y, Z)``."""
    batch_size, spatial = shape[0], tuple(shape[2:])
    check_paintable(spatial)
    painted = rng.uniform(batch_size) < paint_prob
    outer = rng.uniform(batch_size) < outer_prob
    mode = torch.where(painted, torch.where(outer, OUTER, INNER), NONE).long()
    k = max(inner_max, outer_max)
    count = _box_counts(batch_size, mode, inner_max, outer_max, continue_prob, rng)
    sides = _box_sides(mode, k, spatial, rng)
    dims = torch.tensor(spatial, device=rng.device)
    lower = rng.integers(BORDER, dims - sides - BORDER, batch_size, k, 3)
    valid = torch.arange(k, device=rng.device) < count[:, None]
    upper = lower + sides
    return PaintParams(mode, lower, upper, valid, _draw_noise(mode, lower, upper, valid,
                                                              tuple(shape[1:]), rng))


def _draw_noise(mode: Tensor, lower: Tensor, upper: Tensor, valid: Tensor,
                sample_shape: tuple[int, ...], rng: RandomSource) -> Tensor:
    """``(P, C, X, Y, Z)`` noise of the painted samples: the whole cube for outer
    painting, only the boxes for inner painting (zeros elsewhere, never read). The
    torch backend draws ``(B, C, X, Y, Z)`` whole cubes instead (module docstring)."""
    if not rng.uses_numpy:
        return rng.uniform(mode.shape[0], *sample_shape)
    modes = mode.tolist()
    painted = [index for index, m in enumerate(modes) if m != NONE]
    noise = empty_batch((len(painted), *sample_shape), torch.float32, rng.device)
    lows, highs, keep = lower.tolist(), upper.tolist(), valid.tolist()
    for slot, index in enumerate(painted):
        if modes[index] == OUTER:
            rng.fill_uniform(noise[slot])
            continue
        noise[slot].zero_()
        used = [k for k, on in enumerate(keep[index]) if on]
        for box in _box_slices([lows[index][k] for k in used], [highs[index][k] for k in used]):
            noise[slot][box] = rng.uniform(*noise[slot][box].shape)
    return noise


def _box_slices(lower: list[list[int]], upper: list[list[int]]) -> list[tuple[slice, ...]]:
    return [(slice(None), *(slice(lo, hi) for lo, hi in zip(low, up)))
            for low, up in zip(lower, upper)]


def apply_paint(batch: Tensor, params: PaintParams, inplace: bool = False) -> Tensor:
    """``batch (B, C, X, Y, Z)`` with noise painted in (inner) or around (outer) the boxes.

    A few box copies per sample (at most ``K``) replace full-volume masks: only the
    boxes and, for outer painting, one noise copy per sample touch memory.
    Returns a new tensor unless ``inplace``, which overwrites ``batch``.
    """
    params = params.to(batch.device)
    out = batch if inplace else batch.clone()
    if batch.device.type != "cpu":
        return _paint_masked(out, params)
    chosen = (params.mode != NONE).nonzero().squeeze(1)
    every = params.noise.shape[0] == batch.shape[0]  # one noise cube per sample
    if not (every or params.noise.shape[0] == chosen.numel()) or (
            params.noise.shape[1:] != batch.shape[1:]):
        raise ValueError(f"paint parameters carry noise of shape {tuple(params.noise.shape)} "
                         f"for {chosen.numel()} painted samples of shape {tuple(batch.shape[1:])}")
    modes, valid = params.mode.tolist(), params.valid.tolist()
    lower, upper = params.lower.tolist(), params.upper.tolist()
    noise = params.noise.to(batch.dtype)
    for slot, index in enumerate(chosen.tolist()):
        slot = index if every else slot
        used = [k for k, keep in enumerate(valid[index]) if keep]
        boxes = _box_slices([lower[index][k] for k in used], [upper[index][k] for k in used])
        cube = out[index]
        if modes[index] == INNER:
            for box in boxes:
                cube[box] = noise[slot][box]
        else:
            kept = [cube[box].clone() for box in boxes]
            cube.copy_(noise[slot])
            for box, original in zip(boxes, kept):
                cube[box] = original
    return out


def box_union(lower: Tensor, upper: Tensor, valid: Tensor, spatial: tuple[int, ...]) -> Tensor:
    """``(B, X, Y, Z)`` bool: inside any valid box of the sample (one product of per-axis
    interval masks per box, no host reads)."""
    masks = []
    for axis, dim in enumerate(spatial):
        pos = torch.arange(dim, device=lower.device)
        mask = (lower[:, :, axis, None] <= pos) & (pos < upper[:, :, axis, None])  # (B, K, n)
        shape = [mask.shape[0], mask.shape[1], 1, 1, 1]
        shape[axis + 2] = dim
        masks.append(mask.view(shape))
    return (masks[0] & masks[1] & masks[2] & valid[:, :, None, None, None]).any(dim=1)


def _paint_masked(out: Tensor, params: PaintParams) -> Tensor:
    """Device path of :func:`apply_paint`: noise where it belongs, selected by masks."""
    mode = params.mode
    batch_size = out.shape[0]
    noise = params.noise
    if noise.shape[0] != batch_size:  # one row per painted sample: spread to the batch
        slot = torch.cumsum(mode != NONE, 0).sub_(1).clamp_(min=0)
        noise = noise.index_select(0, slot)
    inside = box_union(params.lower, params.upper, params.valid, tuple(out.shape[2:]))
    painted = torch.where((mode == INNER)[:, None, None, None], inside, ~inside)
    painted &= (mode != NONE)[:, None, None, None]
    return out.copy_(torch.where(painted[:, None], noise.to(out.dtype), out))
