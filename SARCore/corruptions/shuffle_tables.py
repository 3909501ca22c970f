"""Lookup tables that let local pixel shuffling write many blocks with a few tensor ops.

A block of shape ``(sx, sy, sz)`` writes ``n = sx*sy*sz`` voxels; a whole set of blocks
becomes one ``(blocks, width)`` tensor when every row has the same width. Grouping by
exact shape (108 shapes for a 64x64x32 cube) needs a Python step per shape and per
sample, so blocks are grouped in a few **width classes** instead: a class holds the
shapes whose volume is at most its width, and rows are padded to that width. Padded
entries repeat the block's first voxel (local index 0: the same destination and the same
key), which changes nothing in the ``amax`` that resolves overlaps. The widths minimise
the padded volume (13 % more entries than the blocks cover for 64x64x32, 8 classes).

Per class there are two tables:

* ``dest``: per shape of the class, the flat offsets (within the cube) of its voxels in
  C order over ``[dx, dy, dz]``; a block's voxels are ``corner + dest[shape]``;
* ``source`` (built per call from the drawn permutations): per permutation row, the
  flat offset of the voxel each local index reads, ``dest[shape][perm[l]]``.
"""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import Tensor

#: Width classes per cube shape: more classes pad less but cost one more step each.
CLASS_COUNT = 8


def _width_classes(volumes: list[int], count: int) -> tuple[int, ...]:
    """Class widths (ascending, the last is the largest volume) that minimise the padded
    volume of all shapes, each shape drawn equally often (dynamic programming)."""
    distinct = sorted(set(volumes))
    shapes = [volumes.count(v) for v in distinct]
    count = min(count, len(distinct))
    inf = float("inf")
    # cost[j][k]: least padded volume covering distinct[:j] with k classes, the last ending at j.
    cost = [[inf] * (count + 1) for _ in range(len(distinct) + 1)]
    start = [[0] * (count + 1) for _ in range(len(distinct) + 1)]
    cost[0][0] = 0.0
    for end in range(1, len(distinct) + 1):
        for k in range(1, count + 1):
            members = 0
            for begin in range(end - 1, -1, -1):
                members += shapes[begin]
                total = cost[begin][k - 1] + members * distinct[end - 1]
                if total < cost[end][k]:
                    cost[end][k], start[end][k] = total, begin
    widths, end = [], len(distinct)
    for k in range(count, 0, -1):
        widths.append(distinct[end - 1])
        end = start[end][k]
    return tuple(sorted(widths))


@dataclasses.dataclass(frozen=True)
class BlockShapes:
    """Every block shape up to ``largest`` sides (in cubes of ``spatial``), numbered in C
    order of ``sides - 1``.

    ``sides (G, 3)`` int32, ``volume (G,)`` int64, ``class_of (G,)`` int16 width class,
    ``row_of (G,)`` int32 the shape's row in its class's ``dest`` table; ``widths`` and
    ``class_shapes`` (the shape numbers) per class; ``dest`` per
    class ``(shapes, width)`` int32 flat offsets, padded with 0 (the corner);
    ``offsets`` all shapes' offsets concatenated, ``offset_start (G,)`` where each begins;
    ``volumes`` the shapes' volumes as Python ints (read on construction, so samplers
    on a GPU need not read ``volume`` back).
    """

    largest: tuple[int, int, int]
    spatial: tuple[int, int, int]
    sides: Tensor
    volume: Tensor
    class_of: Tensor
    row_of: Tensor
    widths: tuple[int, ...]
    class_shapes: tuple[Tensor, ...]
    dest: tuple[Tensor, ...]
    offsets: Tensor
    offset_start: Tensor
    volumes: tuple[int, ...]

    def codes(self, size: Tensor) -> Tensor:
        """int64 shape number of each row of ``size (M, 3)`` (sides 1..largest)."""
        _, ly, lz = self.largest
        top = int(self.volume.numel()) + ly * lz + lz + 1
        return weighted_sum(size, (ly * lz, lz, 1), top).sub_(ly * lz + lz + 1)


def weighted_sum(values: Tensor, weights: tuple[int, int, int], top: int) -> Tensor:
    """``values (M, 3) @ weights`` as int64 for non-negative integers with results below
    ``top``: one float matrix product (exact below 2**24 in float32, 2**53 in float64),
    cheaper than three integer passes and available on every device."""
    dtype = torch.float32 if top < 1 << 24 else torch.float64
    return (values.to(dtype) @ torch.tensor(weights, dtype=dtype, device=values.device)).long()


@functools.lru_cache(maxsize=16)
def block_shapes(largest: tuple[int, int, int], spatial: tuple[int, int, int],
                 device: torch.device) -> BlockShapes:
    """The (cached) shape tables for blocks up to ``largest`` in cubes of ``spatial``."""
    lx, ly, lz = largest
    axes = [torch.arange(1, top + 1, dtype=torch.int32) for top in largest]
    sides = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).view(-1, 3)
    volume = sides.prod(dim=1, dtype=torch.int64)
    widths = _width_classes(volume.tolist(), CLASS_COUNT)
    class_of = torch.bucketize(volume, torch.tensor(widths)).short()
    strides = (spatial[1] * spatial[2], spatial[2], 1)
    box = (torch.arange(lx)[:, None, None] * strides[0] + torch.arange(ly)[:, None] * strides[1]
           + torch.arange(lz))
    per_shape = [box[:sx, :sy, :sz].reshape(-1) for sx, sy, sz in sides.tolist()]
    row_of = torch.zeros(volume.numel(), dtype=torch.int32)
    class_shapes, dest = [], []
    for k, width in enumerate(widths):
        members = (class_of == k).nonzero().squeeze(1)
        row_of[members] = torch.arange(members.numel(), dtype=torch.int32)
        table = torch.zeros(members.numel(), width, dtype=torch.int32)
        for row, code in enumerate(members.tolist()):
            table[row, :volume[code]] = per_shape[code]
        class_shapes.append(members.to(device))
        dest.append(table.to(device))
    offsets = torch.cat(per_shape).int()
    offset_start = torch.cumsum(volume, 0) - volume
    return BlockShapes(largest, spatial, sides.to(device), volume.to(device), class_of.to(device),
                       row_of.to(device), widths, tuple(class_shapes), tuple(dest),
                       offsets.to(device), offset_start.to(device), tuple(volume.tolist()))


def permutation_rows(codes: Tensor, perm_start: Tensor, volume: Tensor, shape_count: int
                     ) -> tuple[Tensor, Tensor, Tensor] | None:
    """Read the permutations as tables of rows, one table per shape.

    The blocks of shape ``c`` must start their permutations at ``base[c] + row * n_c``.
    Returns ``(base (G,), rows (G,) rows per shape, row (M,) each block's row)``, or
    None when some block's start is not aligned so.
    """
    device, dtype = codes.device, perm_start.dtype
    base = torch.full((shape_count,), torch.iinfo(dtype).max, dtype=dtype, device=device)
    base.scatter_reduce_(0, codes, perm_start, "amin")
    shift = base.index_select(0, codes).neg_().add_(perm_start)
    n = volume.to(dtype).index_select(0, codes)
    if bool(torch.remainder(shift, n).any()):
        return None
    row = shift.div_(n, rounding_mode="floor")
    rows = torch.zeros(shape_count, dtype=dtype, device=device)
    rows.scatter_reduce_(0, codes, row + 1, "amax")
    return base.long(), rows.long(), row


@dataclasses.dataclass(frozen=True)
class RowLayout:
    """Where each entry of the class tables comes from, for one placement of the
    permutation rows (shape c's row r starts at ``perm[base[c] + r * n_c]``).

    Per class: ``entry (rows, width)`` index into perm (padded lanes repeat lane 0's
    entry); ``limit (rows, 1)`` int32 the
    row's volume; ``shift (rows, 1)`` int32 where the row's shape's offsets begin;
    ``row_start (G,)`` each shape's first row in its class (empty for one row per
    block).
    """

    entry: tuple[Tensor, ...]
    limit: tuple[Tensor, ...]
    shift: tuple[Tensor, ...]
    row_start: Tensor


#: Permutation pools up to this many entries get per-shape row tables (a pool of 64 rows
#: per shape for 64x64x32 cubes has 170,000); larger ``perm`` (one permutation per block)
#: gets one row per block.
POOL_ENTRIES = 1 << 20


@functools.lru_cache(maxsize=8)
def pool_layout(largest: tuple[int, int, int], spatial: tuple[int, int, int],
                device: torch.device, base: tuple[int, ...], rows: tuple[int, ...]
                ) -> RowLayout:
    """The (cached) :class:`RowLayout` of per-shape permutation rows: a pool of K rows per
    shape gives the same layout in every call, so only the permutation values are read
    per call."""
    shapes = block_shapes(largest, spatial, device)
    base_t = torch.tensor(base, device=device)
    rows_t = torch.tensor(rows, device=device)
    row_start = torch.zeros_like(rows_t)
    parts: list[list[Tensor]] = [[], [], []]
    for members, width in zip(shapes.class_shapes, shapes.widths):
        counts = rows_t[members]
        row_start[members] = torch.cumsum(counts, 0) - counts
        code = torch.repeat_interleave(members, counts)
        local_row = torch.arange(code.numel(), device=device) - row_start[code]
        first = base_t[code] + local_row * shapes.volume[code]
        lanes = torch.arange(width, device=device)
        limit = shapes.volume[code][:, None]
        values = (first[:, None] + torch.where(lanes < limit, lanes, 0), limit.int(),
                  shapes.offset_start[code][:, None].int())
        for part, value in zip(parts, values):
            part.append(value)
    entry, limit, shift = (tuple(part) for part in parts)
    return RowLayout(entry, limit, shift, row_start)


def block_layout(shapes: BlockShapes, codes: Tensor, perm_start: Tensor, bounds: list[int],
                 perm_size: int) -> RowLayout:
    """A :class:`RowLayout` with one row per block, for blocks ordered by class (class k
    is ``[bounds[k], bounds[k + 1])``); works for any placement of the permutations."""
    parts: list[list[Tensor]] = [[], [], []]
    for k, width in enumerate(shapes.widths):
        code = codes[bounds[k]:bounds[k + 1]]
        index = torch.int32 if perm_size < 1 << 31 else torch.int64
        lanes = torch.arange(width, dtype=index, device=codes.device)
        limit = shapes.volume.index_select(0, code)[:, None].int()
        first = perm_start[bounds[k]:bounds[k + 1], None].to(index)
        values = (torch.where(lanes < limit, lanes, 0).add_(first), limit,
                  shapes.offset_start.index_select(0, code)[:, None].int())
        for part, value in zip(parts, values):
            part.append(value)
    entry, limit, shift = (tuple(part) for part in parts)
    return RowLayout(entry, limit, shift, torch.empty(0, dtype=torch.int64))


def source_tables(shapes: BlockShapes, layout: RowLayout, perm: Tensor, dtype: torch.dtype
                  ) -> list[Tensor]:
    """Per class ``(rows, width)`` source offsets (``dtype``): row r of shape c reads the
    voxel at offset ``offsets_c[perm[base[c] + r*n_c + l]]`` for ``l < n_c`` (padded
    lanes repeat lane 0)."""
    tables = []
    for entry, limit, shift in zip(layout.entry, layout.limit, layout.shift):
        local = perm.index_select(0, entry.view(-1)).view(entry.shape)
        if local.numel() and (int(local.amin()) < 0 or not bool((local < limit).all())):
            raise ValueError("shuffle perm entries must be local voxel indices 0..n-1 of "
                             "their block")
        source = shapes.offsets.index_select(0, local.add_(shift).view(-1))
        tables.append(source.view(entry.shape).to(dtype))
    return tables
