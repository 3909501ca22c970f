"""MG's local pixel shuffling, for all blocks of all samples at once.

MG (``local_pixel_shuffling``) draws 10,000 blocks per cube, each with side per axis
uniform in ``[1, dim//10]`` and corner uniform in ``[0, dim - side]``; it reads each
block from the *original* cube, permutes its voxels uniformly, and writes it into the
output in draw order, so where blocks overlap the block drawn last wins.

Here every block gets its ``rank`` (draw order) and a permutation ``perm`` of its local
voxel indices (C order over ``[dx, dy, dz]``): the voxel at local index ``l`` receives
the original voxel at local index ``perm[l]``. :func:`apply_shuffle` reproduces the
sequential result exactly: for each voxel it keeps the entry of the covering block
with the highest rank, via ``scatter_reduce(amax)`` over keys
``(rank + 1) << bits | source index`` (the rank decides the winner, the low bits carry
where its value comes from); uncovered voxels keep their own value. The voxels a block
keeps are therefore a permutation of a subset of that block's original voxels, as in MG,
and the result equals MG's loop run on the same blocks in rank order (tested).

Blocks are stored grouped by shape, so a whole group is one ``(blocks, volume)`` tensor:
no per-block Python loop and at most ``(dim//10)^3`` groups.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from SARCore.corruptions.params import TensorParams
from SARCore.corruptions.rng import RandomSource

BLOCK_DIVISOR = 10


def max_block_sides(spatial: tuple[int, ...]) -> tuple[int, ...]:
    """Largest block side per axis (``dim // 10``); ValueError when a side is < 10 voxels."""
    sides = tuple(dim // BLOCK_DIVISOR for dim in spatial)
    if min(sides) < 1:
        raise ValueError(f"local shuffling needs every spatial side to be at least "
                         f"{BLOCK_DIVISOR} voxels, got {tuple(spatial)}")
    return sides


@dataclasses.dataclass(frozen=True)
class ShuffleParams(TensorParams):
    """Blocks of one batch (M blocks, N = total block volume).

    ``apply (B,)`` bool; per block ``sample (M,)`` batch index, ``origin (M, 3)`` lower
    corner ``[x, y, z]``, ``size (M, 3)`` sides, ``rank (M,)`` draw order within its sample
    (higher wins where blocks overlap); ``perm (N,)`` int32, the blocks' local
    permutations concatenated in block order (``perm[start[m] + l]`` is the source of
    local voxel l).
    """

    apply: Tensor
    sample: Tensor
    origin: Tensor
    size: Tensor
    rank: Tensor
    perm: Tensor


def _shape_codes(size: Tensor, largest: Tensor) -> Tensor:
    """One integer per block shape, ordered like C order of ``size - 1``."""
    return ((size[:, 0] - 1) * largest[1] + size[:, 1] - 1) * largest[2] + size[:, 2] - 1


def _shapes(codes: Tensor, largest: Tensor) -> Tensor:
    """Inverse of :func:`_shape_codes`: ``(M, 3)`` sides (table lookups, no division)."""
    lx, ly, lz = largest.tolist()
    sides = [torch.arange(1, top + 1, device=codes.device) for top in (lx, ly, lz)]
    table = torch.stack(torch.meshgrid(*sides, indexing="ij"), dim=-1).view(-1, 3)
    return torch.stack([table[:, axis].index_select(0, codes) for axis in range(3)], dim=1)


def sample_shuffle_params(shape: tuple[int, ...], prob: float, blocks: int,
                          rng: RandomSource) -> ShuffleParams:
    """Draw MG's blocks for a batch of ``shape (B, C, X, Y, Z)``, grouped by block shape.

    A block's three sides are drawn as one uniform shape code; stable-sorting the codes
    groups the blocks by shape while ``rank`` keeps their draw order.
    """
    batch_size, spatial = shape[0], tuple(shape[2:])
    largest = torch.tensor(max_block_sides(spatial), device=rng.device)
    apply = rng.uniform(batch_size) < prob
    chosen = apply.nonzero().squeeze(1)
    codes = rng.integers(0, int(largest.prod()) - 1, chosen.numel() * blocks)
    small = torch.int16 if int(largest.prod()) <= torch.iinfo(torch.int16).max else torch.int64
    codes, order = torch.sort(codes.to(small), stable=True)
    codes = codes.long()
    size = _shapes(codes, largest)
    origin = rng.integers(0, torch.tensor(spatial, device=rng.device) - size, codes.numel(), 3)
    sample, rank = chosen[order // blocks], order % blocks
    _, counts = torch.unique_consecutive(codes, return_counts=True)
    volumes = size[torch.cumsum(counts, 0) - counts].prod(dim=1)
    perm = torch.empty(int(size.prod(dim=1).sum()), dtype=torch.int32, device=rng.device)
    entry = 0
    for count, volume in zip(counts.tolist(), volumes.tolist()):
        rng.permutations(count, volume, out=perm[entry:entry + count * volume].view(count, volume))
        entry += count * volume
    return ShuffleParams(apply, sample, origin, size, rank, perm)


def _check_blocks(params: ShuffleParams, spatial: tuple[int, ...]) -> None:
    dims = torch.tensor(spatial, device=params.origin.device)
    if bool((params.size < 1).any()) or bool((params.origin < 0).any()) or bool(
            (params.origin + params.size > dims).any()):
        raise ValueError(f"shuffle blocks must lie inside the {tuple(spatial)} cube")
    if params.perm.numel() != int(params.size.prod(dim=1).sum()):
        raise ValueError(f"shuffle perm has {params.perm.numel()} entries, the blocks cover "
                         f"{int(params.size.prod(dim=1).sum())} voxels")
    if not bool(params.apply[params.sample].all()):
        raise ValueError("shuffle blocks belong to samples whose apply flag is False")


def _sorted_by_shape(params: ShuffleParams, largest: Tensor) -> ShuffleParams:
    """The same blocks grouped by shape (the sampler already stores them so)."""
    codes = _shape_codes(params.size, largest)
    if codes.numel() < 2 or bool((codes[1:] >= codes[:-1]).all()):
        return params
    order = torch.argsort(codes, stable=True)
    volume = params.size.prod(dim=1)
    start = torch.cumsum(volume, 0) - volume
    moved = volume[order]
    new_start = torch.cumsum(moved, 0) - moved
    offset = torch.arange(params.perm.numel(), device=params.perm.device)
    entry = torch.repeat_interleave(start[order] - new_start, moved) + offset
    return ShuffleParams(params.apply, params.sample[order], params.origin[order],
                         params.size[order], params.rank[order], params.perm[entry])


def source_index(params: ShuffleParams, spatial: tuple[int, ...]) -> Tensor:
    """``(S, V)`` int32: for each voxel of the S shuffled cubes (batch order, flattened), the
    flat index within its cube of the original voxel that ends up there."""
    _check_blocks(params, spatial)
    device = params.origin.device
    chosen = params.apply.nonzero().squeeze(1)
    volume = spatial[0] * spatial[1] * spatial[2]
    strides = torch.tensor([spatial[1] * spatial[2], spatial[2], 1], device=device)
    largest = params.size.amax(dim=0)
    params = _sorted_by_shape(params, largest)
    slot = torch.full((params.apply.shape[0],), -1, dtype=torch.int64, device=device)
    slot[chosen] = torch.arange(chosen.numel(), device=device)
    corner = (params.origin * strides).sum(dim=1)
    base = slot[params.sample] * volume + corner
    # key = (rank + 1) << bits | source index within the cube; the highest rank wins.
    bits = max(volume - 1, 1).bit_length()
    wide = bits + (int(params.rank.max()) + 1).bit_length() > 31
    dtype = torch.int64 if wide else torch.int32
    lx, ly, lz = largest.tolist()
    box = (torch.arange(lx, device=device)[:, None, None] * strides[0]
           + torch.arange(ly, device=device)[:, None] * strides[1]
           + torch.arange(lz, device=device))
    key_base = (((params.rank + 1) << bits) + corner).to(dtype)
    # Voxels no block covers keep rank 0 and their own index.
    keys = torch.arange(volume, dtype=dtype, device=device).repeat(chosen.numel())
    _, counts = torch.unique_consecutive(_shape_codes(params.size, largest), return_counts=True)
    block, entry = 0, 0
    for count in counts.tolist():
        sx, sy, sz = params.size[block].tolist()
        offsets = box[:sx, :sy, :sz].reshape(-1)
        n = offsets.numel()
        key = offsets.to(dtype).index_select(0, params.perm[entry:entry + count * n])
        key = key.view(count, n).add_(key_base[block:block + count, None])
        dest = base[block:block + count, None] + offsets
        keys.scatter_reduce_(0, dest.view(-1), key.view(-1), "amax")
        block, entry = block + count, entry + count * n
    return keys.bitwise_and_((1 << bits) - 1).view(chosen.numel(), volume).int()


def apply_shuffle(batch: Tensor, params: ShuffleParams) -> Tensor:
    """Copy of ``batch (B, C, X, Y, Z)`` with the blocks of ``params`` shuffled (every
    channel alike); each shuffled cube is gathered straight into the output."""
    params = params.to(batch.device)
    chosen = params.apply.nonzero().squeeze(1).tolist()
    slots = {index: slot for slot, index in enumerate(chosen)} if params.size.shape[0] else {}
    source = source_index(params, tuple(batch.shape[2:])) if slots else None
    out = torch.empty(batch.shape, dtype=batch.dtype, device=batch.device)
    for index in range(batch.shape[0]):
        if source is None or index not in slots:
            out[index] = batch[index]
            continue
        original = batch[index].reshape(batch.shape[1], -1)
        target = out[index].view(batch.shape[1], -1)
        for channel in range(batch.shape[1]):
            torch.index_select(original[channel], 0, source[slots[index]], out=target[channel])
    return out
