"""MG's local pixel shuffling, for all blocks of all samples at once.

MG (``local_pixel_shuffling``) draws 10,000 blocks per cube, each with side per axis
uniform in ``[1, dim//10]`` and corner uniform in ``[0, dim - side]``; it reads each
block from the *original* cube, permutes its voxels uniformly, and writes it into the
output in draw order, so where blocks overlap the block drawn last wins.

Here every block gets its ``rank`` (draw order) and a permutation of its local voxel
indices (C order over ``[dx, dy, dz]``): the voxel at local index ``l`` receives the
original voxel at local index ``perm[perm_start + l]``. :func:`apply_shuffle`
reproduces the sequential result exactly: for each voxel it keeps the entry of the
covering block with the highest rank, via ``scatter_reduce(amax)`` over keys
``(rank + 1) << bits | source index`` (the rank decides the winner, the low bits carry
where its value comes from); uncovered voxels keep their own value. The result equals
MG's loop run on the same blocks and permutations in rank order (tested).

**Permutation pool** (``pool`` / ``CorruptionConfig.shuffle_pool``). Drawing one uniform
permutation per block means sorting random keys for every block voxel (about 245,000
per 64x64x32 cube), the largest cost of the whole corruption. With ``pool = K > 0`` the
sampler draws, per call, K uniform permutations for each block shape that occurs, and
every block picks one of its shape's K uniformly. Each block's permutation is still
exactly uniform and independent of its position, size and rank; what changes is the
joint law: two blocks of the same shape drawn in the same call share their permutation
with probability 1/K (with 10,000 blocks per cube and 108 shapes, a pool row serves
about 1.5 blocks per cube and call at K = 64). Blocks, positions, ranks and overlaps
are drawn exactly as MG does. ``pool = 0`` gives every block its own permutation
(MG's law exactly).

Layout: blocks are kept grouped by width class (see :mod:`.shuffle_tables`) and then by
sample, so that a few cubes' blocks of one class are one ``(blocks, width)`` tensor, and
overlaps are resolved a few cubes at a time while their keys stay in cache. A pool's
permutations become small per-shape tables (cached layout, one row per pool entry);
one permutation per block becomes one table row per block.

**Devices** (no host reads). The layout above needs counts read back (how many blocks
per class, which samples are shuffled); on a CPU tensor that costs nothing, on a GPU
each read stalls the queue. So a torch-backend sampler (a generator off the CPU, see
:mod:`.rng`) draws blocks for *every* sample (those of samples whose ``apply`` flag is
False are ignored) and a pool for *every* block shape, all shapes fixed by the batch
shape; and :func:`scatter_shuffle`, which :func:`apply_shuffle` runs for tensors off
the CPU, pads every block to the largest shape instead of width classes. Both give the
same result for the same parameters (tested); a CUDA generator's stream differs from
the NumPy one anyway, and the law is MG's (with the pool's sharing) as above.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from torch import Tensor

from SARCore.corruptions.buffers import empty_like_batch
from SARCore.corruptions.params import TensorParams
from SARCore.corruptions.rng import RandomSource
from SARCore.corruptions.shuffle_tables import (
    POOL_ENTRIES,
    BlockShapes,
    block_layout,
    block_shapes,
    permutation_rows,
    pool_layout,
    source_tables,
    weighted_sum,
)

BLOCK_DIVISOR = 10
#: Cubes resolved together: their keys (512 KB each for 64x64x32) stay in cache.
CUBES_PER_STEP = 2
#: Block voxels :func:`scatter_shuffle` handles per step (int64 keys and destinations:
#: about 100 MB of temporaries).
SCATTER_ENTRIES = 1 << 22


def max_block_sides(spatial: tuple[int, ...]) -> tuple[int, ...]:
    """Largest block side per axis (``dim // 10``); ValueError when a side is < 10 voxels."""
    sides = tuple(dim // BLOCK_DIVISOR for dim in spatial)
    if min(sides) < 1:
        raise ValueError(f"local shuffling needs every spatial side to be at least "
                         f"{BLOCK_DIVISOR} voxels, got {tuple(spatial)}")
    return sides


@dataclasses.dataclass(frozen=True)
class ShuffleParams(TensorParams):
    """Blocks of one batch (M blocks).

    ``apply (B,)`` bool; per block ``sample (M,)`` batch index, ``origin (M, 3)`` lower
    corner ``[x, y, z]``, ``size (M, 3)`` sides, ``rank (M,)`` draw order within its sample
    (higher wins where blocks overlap); ``perm`` int32 permutation entries and
    ``perm_start (M,)``: block m's voxel at local index l receives the original voxel at
    local index ``perm[perm_start[m] + l]``. Blocks may share entries (permutation
    pool). Without ``perm_start`` the blocks' permutations follow each other in block
    order. Blocks of samples whose ``apply`` flag is False are ignored. Any integer
    dtypes are accepted; the sampler gives int32.
    """

    apply: Tensor
    sample: Tensor
    origin: Tensor
    size: Tensor
    rank: Tensor
    perm: Tensor
    perm_start: Tensor = None  # type: ignore[assignment]  # filled in __post_init__

    def __post_init__(self) -> None:
        if self.perm_start is None:
            volume = self.size.prod(dim=1)
            object.__setattr__(self, "perm_start", torch.cumsum(volume, 0) - volume)


def _draw_rows(rows: Tensor, volume: Tensor, rng: RandomSource) -> tuple[Tensor, Tensor]:
    """``rows[c]`` uniform permutations of ``0..volume[c]-1`` per shape c: ``(perm, base)``
    with shape c's row r at ``perm[base[c] + r * volume[c]:]``. Shapes of equal volume
    are drawn by one call."""
    counts, volumes = rows.tolist(), volume.tolist()
    by_volume: dict[int, list[int]] = {}
    for code, (count, n) in enumerate(zip(counts, volumes)):
        if count:
            by_volume.setdefault(n, []).append(code)
    base, entry, draws = [0] * len(counts), 0, []
    for n in sorted(by_volume):
        draws.append((entry, n, sum(counts[code] for code in by_volume[n])))
        for code in by_volume[n]:
            base[code], entry = entry, entry + counts[code] * n
    perm = torch.empty(entry, dtype=torch.int32, device=rows.device)
    for first, n, count in draws:
        rng.permutations(count, n, out=perm[first:first + count * n].view(count, n))
    return perm, torch.tensor(base, device=rows.device)


def _rows_within_shape(codes: Tensor, shape_count: int) -> Tensor:
    """Per block, how many earlier blocks (storage order) have its shape."""
    small = torch.int16 if shape_count <= torch.iinfo(torch.int16).max else torch.int32
    order = torch.sort(codes.to(small), stable=True).indices
    counts = torch.bincount(codes, minlength=shape_count)
    first = torch.cumsum(counts, 0) - counts
    row = torch.empty_like(codes)
    row[order] = torch.arange(codes.numel(), device=codes.device) - first[codes[order]]
    return row


def sample_shuffle_params(shape: tuple[int, ...], prob: float, blocks: int,
                          rng: RandomSource, pool: int = 0) -> ShuffleParams:
    """Draw MG's blocks for a batch of ``shape (B, C, X, Y, Z)``.

    ``pool``: permutations per block shape and call (0: one per block, exact MG law;
    see the module docstring). Blocks are stored by width class, then sample, then
    draw order; ``rank`` keeps the draw order. Integer fields are int32.
    """
    if pool < 0:
        raise ValueError(f"pool must be 0 or a positive number of permutations, not {pool}")
    batch_size, spatial = shape[0], tuple(shape[2:])
    shapes = block_shapes(max_block_sides(spatial), spatial, rng.device)
    if not rng.uses_numpy:
        return _sample_fixed_layout(batch_size, spatial, prob, blocks, rng, pool, shapes)
    count = shapes.volume.numel()
    apply = rng.uniform(batch_size) < prob
    chosen = apply.nonzero().squeeze(1).int()
    codes = rng.integers(0, count - 1, chosen.numel() * blocks)
    order = torch.sort(shapes.class_of.index_select(0, codes), stable=True).indices
    codes = codes.index_select(0, order)
    size = shapes.sides.index_select(0, codes)
    span = torch.tensor(spatial, dtype=torch.int32, device=rng.device) - size
    origin = rng.below(span.add_(1))
    draw = order.int()
    which = draw // blocks
    sample, rank = chosen[which], draw.sub_(which * blocks)  # remainder, without a division
    counts = torch.bincount(codes, minlength=count)
    if pool == 0:
        perm, base = _draw_rows(counts, shapes.volume, rng)
        row = _rows_within_shape(codes, count)
    else:
        perm, base = _draw_rows(torch.where(counts > 0, pool, 0), shapes.volume, rng)
        row = rng.integers(0, pool - 1, codes.numel(), dtype=torch.int32)
    dtype = torch.int32 if perm.numel() <= torch.iinfo(torch.int32).max else torch.int64
    perm_start = shapes.volume.to(dtype).index_select(0, codes).mul_(row)
    perm_start += base.to(dtype).index_select(0, codes)
    return ShuffleParams(apply, sample, origin, size, rank, perm, perm_start)


def _sample_fixed_layout(batch_size: int, spatial: tuple[int, ...], prob: float, blocks: int,
                         rng: RandomSource, pool: int, shapes: BlockShapes) -> ShuffleParams:
    """The torch backend's draw: every tensor's size follows from the arguments alone, so
    nothing is read back from the device (see the module docstring). Blocks are stored
    by sample, then draw order; ``pool = 0`` draws each block's permutation as the
    argsort of keys over the largest block, keys beyond the block's volume set above 1."""
    device, count = rng.device, shapes.volume.numel()
    apply = rng.uniform(batch_size) < prob
    codes = rng.integers(0, count - 1, batch_size * blocks)
    size = shapes.sides.index_select(0, codes)
    span = torch.tensor(spatial, dtype=torch.int32, device=device) - size
    origin = rng.below(span.add_(1))
    draw = torch.arange(batch_size * blocks, dtype=torch.int32, device=device)
    sample, rank = draw // blocks, draw.remainder(blocks)
    volume = shapes.volume.index_select(0, codes)
    if pool == 0:
        widest = max(shapes.volumes)
        keys = rng.uniform(codes.numel(), widest)
        lanes = torch.arange(widest, device=device)
        keys.masked_fill_(lanes >= volume[:, None], 2.0)
        perm = keys.argsort(dim=1).int().view(-1)
        perm_start = draw.to(torch.int64 if perm.numel() >= 1 << 31 else torch.int32) * widest
        return ShuffleParams(apply, sample, origin, size, rank, perm, perm_start)
    base, perm = [], []
    for n in sorted(set(shapes.volumes)):  # every shape gets its pool, one draw per volume
        members = [code for code, v in enumerate(shapes.volumes) if v == n]
        drawn = rng.permutations(pool * len(members), n).view(-1)
        start = sum(p.numel() for p in perm)
        base += [(code, start + i * pool * n) for i, code in enumerate(members)]
        perm.append(drawn)
    starts = torch.tensor([b for _, b in sorted(base)], dtype=torch.int32, device=device)
    row = rng.integers(0, pool - 1, codes.numel(), dtype=torch.int32)
    perm_start = volume.int().mul_(row).add_(starts.index_select(0, codes))
    return ShuffleParams(apply, sample, origin, size, rank, torch.cat(perm), perm_start)


def _check_blocks(params: ShuffleParams, spatial: tuple[int, ...]) -> None:
    """Blocks inside the cube, non-negative ranks, only in samples that are shuffled."""
    if params.size.shape[0] == 0:
        return
    dims = torch.tensor(spatial, device=params.origin.device)
    if int(params.size.amin()) < 1 or int(params.origin.amin()) < 0 or bool(
            (torch.add(params.origin, params.size).amax(dim=0) > dims).any()):
        raise ValueError(f"shuffle blocks must lie inside the {tuple(spatial)} cube")
    if int(params.rank.amin()) < 0:
        raise ValueError("shuffle ranks must be non-negative")


def _used_blocks(params: ShuffleParams) -> ShuffleParams:
    """Only the blocks of samples that are shuffled (host path: reads the flags)."""
    used = params.apply.index_select(0, params.sample.long())
    if bool(used.all()):
        return params
    fields = ("sample", "origin", "size", "rank", "perm_start")
    return dataclasses.replace(params, **{name: getattr(params, name)[used] for name in fields})


def _check_permutations(perm: Tensor, perm_start: Tensor, volume: Tensor) -> None:
    """Every block's permutation entries lie inside ``perm``."""
    if int(perm_start.amin()) < 0 or int(torch.add(perm_start, volume).amax()) > perm.numel():
        raise ValueError(f"shuffle blocks read permutation entries outside perm "
                         f"({perm.numel()} entries)")


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Blocks ordered by (class, step); see :func:`_plan` and :func:`_resolve`."""

    slots: int
    volume: int
    bits: int
    corner: Tensor
    key_base: Tensor
    row: Tensor | None
    dest_row: Tensor
    dest: tuple[Tensor, ...]
    source: list[Tensor]
    bounds: list[int]


def _key_dtype(rank: Tensor, bits: int) -> torch.dtype:
    """int32 keys when ``(rank + 1) << bits | index`` fits in 31 bits, else int64."""
    top = int(rank.amax()) + 1 if rank.numel() else 0
    if top.bit_length() + bits > 62:
        raise ValueError(f"shuffle ranks must stay below 2**{61 - bits}, got {top - 1}")
    return torch.int32 if top.bit_length() + bits <= 31 else torch.int64


def _row_tables(params: ShuffleParams, shapes: BlockShapes, codes: Tensor, start: Tensor,
                class_bounds: list[int], dtype: torch.dtype
                ) -> tuple[list[Tensor], Tensor | None]:
    """Per class the source tables, and per block (canonical order) its row in them.

    A permutation pool (a ``perm`` much smaller than the blocks, stored as per-shape
    rows as the sampler does) gets cached per-shape tables; anything else one row per
    block, in block order (row None).
    """
    perm, count = params.perm, shapes.volume.numel()
    volumes = shapes.volume.index_select(0, codes)
    pooled = perm.numel() <= min(POOL_ENTRIES, int(volumes.sum()) // 2)
    rows = permutation_rows(codes, start, shapes.volume, count) if pooled else None
    if rows is None:
        _check_permutations(perm, start, volumes)
        layout = block_layout(shapes, codes, start, class_bounds, perm.numel())
        return source_tables(shapes, layout, perm, dtype), None
    base, row_count, row = rows
    used = row_count > 0
    if int(base[used].amin()) < 0 or int(
            (base + row_count * shapes.volume)[used].amax()) > perm.numel():
        raise ValueError(f"shuffle blocks read permutation entries outside perm "
                         f"({perm.numel()} entries)")
    layout = pool_layout(shapes.largest, shapes.spatial, perm.device, tuple(base.tolist()),
                         tuple(row_count.tolist()))
    return source_tables(shapes, layout, perm, dtype), layout.row_start.index_select(
        0, codes).add_(row)


def _plan(params: ShuffleParams, spatial: tuple[int, int, int]) -> _Plan:
    """Order blocks by (width class, step of CUBES_PER_STEP cubes), build the class tables
    (:func:`_row_tables`) and, per block, the key base and the corner within its step."""
    device = params.origin.device
    chosen = params.apply.nonzero().squeeze(1)
    volume = spatial[0] * spatial[1] * spatial[2]
    bits = max(volume - 1, 1).bit_length()
    largest = tuple(int(v) for v in params.size.amax(dim=0).tolist())
    shapes = block_shapes(largest, spatial, device)  # type: ignore[arg-type]
    slot = torch.full((params.apply.shape[0],), -1, dtype=torch.int32, device=device)
    slot[chosen] = torch.arange(chosen.numel(), dtype=torch.int32, device=device)
    steps = (chosen.numel() + CUBES_PER_STEP - 1) // CUBES_PER_STEP
    codes, block_slot = shapes.codes(params.size), slot.index_select(0, params.sample)
    origin, rank, start = params.origin, params.rank, params.perm_start
    cell = shapes.class_of.index_select(0, codes).int().mul_(steps)
    cell += block_slot // CUBES_PER_STEP
    if not bool((cell[1:] >= cell[:-1]).all()):  # the sampler's order needs no sort
        order = torch.argsort(cell, stable=True)
        codes, block_slot, cell = codes[order], block_slot[order], cell[order]
        origin, rank, start = origin[order], rank[order], start[order]
    counts = torch.bincount(cell, minlength=len(shapes.widths) * steps)
    bounds = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]).tolist()
    dtype = _key_dtype(rank, bits)
    source, row = _row_tables(params, shapes, codes, start, bounds[::steps], dtype)
    corner = weighted_sum(origin, (spatial[1] * spatial[2], spatial[2], 1), volume).to(dtype)
    key_base = rank.to(dtype, copy=True).add_(1).bitwise_left_shift_(bits).add_(corner)
    corner.add_(block_slot.remainder(CUBES_PER_STEP).to(dtype), alpha=volume)
    return _Plan(chosen.numel(), volume, bits, corner, key_base, row,
                 shapes.row_of.index_select(0, codes), shapes.dest, source, bounds)


def _resolve(plan: _Plan) -> Iterator[tuple[int, Tensor]]:
    """Per step, ``(first slot, (cubes, V) source index of every voxel)``; the tensor is
    reused by the next step. Scratch buffers are allocated once, so no step asks the
    allocator for fresh pages."""
    steps = (plan.slots + CUBES_PER_STEP - 1) // CUBES_PER_STEP
    dtype, device = plan.key_base.dtype, plan.corner.device
    identity = torch.arange(plan.volume, dtype=dtype, device=device)
    largest = max((plan.bounds[i + 1] - plan.bounds[i]) * plan.dest[i // steps].shape[1]
                  for i in range(len(plan.bounds) - 1))
    dest_buf = torch.empty(largest, dtype=torch.int64, device=device)
    offset_buf = torch.empty(largest, dtype=torch.int32, device=device)
    key_buf = torch.empty(largest, dtype=dtype, device=device)
    keys_buf = torch.empty(CUBES_PER_STEP, plan.volume, dtype=dtype, device=device)
    for step in range(steps):
        keys = keys_buf[:min(CUBES_PER_STEP, plan.slots - step * CUBES_PER_STEP)]
        keys.copy_(identity)
        for k, (dest_table, source_table) in enumerate(zip(plan.dest, plan.source)):
            first, last = plan.bounds[k * steps + step], plan.bounds[k * steps + step + 1]
            if first == last:
                continue
            shape = (last - first, dest_table.shape[1])
            offsets = offset_buf[:shape[0] * shape[1]].view(shape)
            torch.index_select(dest_table, 0, plan.dest_row[first:last], out=offsets)
            dest = dest_buf[:offsets.numel()].view(shape)
            torch.add(plan.corner[first:last, None], offsets, out=dest)
            key = key_buf[:offsets.numel()].view(shape)
            if plan.row is None:  # one table row per block, in block order
                offset = plan.bounds[k * steps]
                torch.add(source_table[first - offset:last - offset],
                          plan.key_base[first:last, None], out=key)
            else:
                torch.index_select(source_table, 0, plan.row[first:last], out=key)
                key += plan.key_base[first:last, None]
            keys.view(-1).scatter_reduce_(0, dest.view(-1), key.view(-1), "amax")
        yield step * CUBES_PER_STEP, keys.bitwise_and_((1 << plan.bits) - 1)


def scatter_shuffle(batch: Tensor, params: ShuffleParams) -> Tensor:
    """:func:`apply_shuffle` without reading anything back to the host: every block is
    padded to the largest shape ``max_block_sides`` allows (padded lanes repeat lane 0,
    as in the class tables), and all cubes' keys are resolved by one ``scatter_reduce``
    per step of :data:`SCATTER_ENTRIES` block voxels. Blocks are not validated (that
    needs their values on the host); :func:`apply_shuffle` checks them on a CPU."""
    params = params.to(batch.device)
    spatial = tuple(batch.shape[2:])
    batch_size, channels, device = batch.shape[0], batch.shape[1], batch.device
    volume = spatial[0] * spatial[1] * spatial[2]
    bits = max(volume - 1, 1).bit_length()
    shapes = block_shapes(max_block_sides(spatial), spatial, device)  # type: ignore[arg-type]
    widest = max(shapes.volumes)
    keys = torch.arange(volume, device=device).repeat(batch_size)
    lanes = torch.arange(widest, device=device)
    step = max(1, SCATTER_ENTRIES // widest)
    for first in range(0, params.size.shape[0], step):
        part = slice(first, first + step)
        codes = shapes.codes(params.size[part])
        lane = torch.where(lanes < shapes.volume.index_select(0, codes)[:, None], lanes, 0)
        shift = shapes.offset_start.index_select(0, codes)[:, None]
        local = params.perm.index_select(0, (params.perm_start[part, None].long() + lane)
                                         .view(-1)).view(lane.shape)
        source = shapes.offsets.index_select(0, (local + shift).view(-1)).view(lane.shape)
        corner = weighted_sum(params.origin[part], (spatial[1] * spatial[2], spatial[2], 1),
                              volume)
        sample = params.sample[part].long()
        base = (params.rank[part].long() + 1).bitwise_left_shift_(bits).add_(corner)
        base.masked_fill_(~params.apply.index_select(0, sample), -(1 << 62))  # never wins
        dest = shapes.offsets.index_select(0, (lane + shift).view(-1)).view(lane.shape)
        dest = dest.long().add_((sample * volume + corner)[:, None])
        keys.scatter_reduce_(0, dest.view(-1), source.long().add_(base[:, None]).view(-1),
                             "amax")
    sources = keys.bitwise_and_((1 << bits) - 1).view(batch_size, 1, volume)
    return batch.reshape(batch_size, channels, volume).gather(
        2, sources.expand(-1, channels, -1)).view(batch.shape)


def apply_shuffle(batch: Tensor, params: ShuffleParams) -> Tensor:
    """Copy of ``batch (B, C, X, Y, Z)`` with the blocks of ``params`` shuffled (every
    channel alike); each shuffled cube is gathered straight into the output. Off the
    CPU this is :func:`scatter_shuffle` (no host reads)."""
    if batch.device.type != "cpu":
        return scatter_shuffle(batch, params)
    params = params.to(batch.device)
    spatial = tuple(batch.shape[2:])
    _check_blocks(params, spatial)
    params = _used_blocks(params)
    out = empty_like_batch(batch)
    chosen = params.apply.nonzero().squeeze(1).tolist() if params.size.shape[0] else []
    shuffled = set(chosen)
    for index in range(batch.shape[0]):
        if index not in shuffled:
            out[index] = batch[index]
    if not chosen:
        return out
    channels = batch.shape[1]
    for first, sources in _resolve(_plan(params, spatial)):  # type: ignore[arg-type]
        for offset, source in enumerate(sources):
            index = chosen[first + offset]
            original = batch[index].reshape(channels, -1)
            target = out[index].view(channels, -1)
            for channel in range(channels):
                torch.index_select(original[channel], 0, source, out=target[channel])
    return out
