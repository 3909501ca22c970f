"""Local pixel shuffling: MG's sequential block writes, reproduced in one batched pass."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from corruption_cubes import real_cubes

from SARCore.corruptions import RandomSource, ShuffleParams, apply_shuffle, sample_shuffle_params


@pytest.fixture(scope="module")
def cubes(ct_small, brats_flair) -> torch.Tensor:
    return real_cubes(ct_small, brats_flair, per_scan=2)


def sequential_shuffle(batch: torch.Tensor, params: ShuffleParams) -> torch.Tensor:
    """MG's loop: blocks in draw order, each read from the original, permuted, written."""
    out = batch.clone()
    starts = params.perm_start.tolist()
    samples, ranks = params.sample.tolist(), params.rank.tolist()
    origins, sizes = params.origin.tolist(), params.size.tolist()
    perm = params.perm.long()
    for m in sorted(range(len(sizes)), key=lambda m: (samples[m], ranks[m])):
        (x, y, z), (sx, sy, sz), b = origins[m], sizes[m], samples[m]
        window = batch[b, :, x:x + sx, y:y + sy, z:z + sz].reshape(batch.shape[1], -1)
        local = perm[starts[m]:starts[m] + sx * sy * sz]
        out[b, :, x:x + sx, y:y + sy, z:z + sz] = window[:, local].view(-1, sx, sy, sz)
    return out


def hand_params(batch_size: int, blocks: list[tuple[int, tuple, tuple, int, list[int]]],
                apply: list[bool]) -> ShuffleParams:
    """Params from (sample, origin, size, rank, perm) tuples, in the given storage order."""
    return ShuffleParams(
        apply=torch.tensor(apply),
        sample=torch.tensor([b[0] for b in blocks]),
        origin=torch.tensor([b[1] for b in blocks]),
        size=torch.tensor([b[2] for b in blocks]),
        rank=torch.tensor([b[3] for b in blocks]),
        perm=torch.tensor([v for b in blocks for v in b[4]], dtype=torch.int32))


def test_known_blocks_keep_their_values_and_nothing_else_moves(cubes):
    batch = cubes[:2]
    rev = list(range(23, -1, -1))  # 2x4x3 block read backwards
    blocks = [(0, (5, 7, 9), (2, 4, 3), 0, rev),
              (0, (30, 40, 2), (6, 6, 3), 1, torch.randperm(108).tolist()),
              (1, (60, 0, 29), (4, 1, 3), 0, [11, 0, 5, 2, 4, 3, 1, 6, 8, 7, 10, 9])]
    out = apply_shuffle(batch, hand_params(2, blocks, [True, True]))
    changed = torch.zeros_like(batch, dtype=torch.bool)
    for b, (x, y, z), (sx, sy, sz), _, perm in blocks:
        region = (b, 0, slice(x, x + sx), slice(y, y + sy), slice(z, z + sz))
        before, after = batch[region].flatten(), out[region].flatten()
        assert torch.equal(after, before[torch.tensor(perm)])
        assert torch.equal(after.sort().values, before.sort().values)  # same multiset
        changed[region] = True
    assert torch.equal(out[~changed], batch[~changed])
    assert not torch.equal(out, batch)


def test_overlapping_blocks_match_mg_sequential_writes(cubes):
    batch = cubes[1:3]
    drawn = sample_shuffle_params((1, *batch.shape[1:]), 1.0, 10000,
                                  RandomSource(torch.Generator().manual_seed(3)))
    # The second cube is shuffled with MG's 10,000 blocks, the first is left alone.
    params = dataclasses.replace(drawn, apply=torch.tensor([False, True]), sample=drawn.sample + 1)
    out = apply_shuffle(batch, params)
    assert torch.equal(out, sequential_shuffle(batch, params))
    assert torch.equal(out[0], batch[0]) and not torch.equal(out[1], batch[1])


def test_storage_order_and_wide_keys_do_not_change_the_result(cubes):
    batch = cubes[:1]
    g = torch.Generator().manual_seed(5)
    blocks = []
    for rank in range(300):  # dense overlaps in a small corner, ranks far apart
        size = tuple(int(torch.randint(1, top + 1, (1,), generator=g)) for top in (6, 6, 3))
        origin = tuple(int(torch.randint(0, 12 - s, (1,), generator=g)) for s in size)
        n = size[0] * size[1] * size[2]
        blocks.append((0, origin, size, rank * 2**22, torch.randperm(n, generator=g).tolist()))
    blocks.reverse()  # storage order unrelated to shape and rank
    params = hand_params(1, blocks, [True])
    assert torch.equal(apply_shuffle(batch, params), sequential_shuffle(batch, params))


def test_sampled_blocks_follow_mg_ranges():
    shape = (4, 1, 64, 64, 32)
    params = sample_shuffle_params(shape, 1.0, 10000,
                                   RandomSource(torch.Generator().manual_seed(1)))
    assert params.apply.all()
    assert params.size.shape == (40000, 3)
    largest = torch.tensor([6, 6, 3])
    assert (params.size >= 1).all() and (params.size <= largest).all()
    assert torch.equal(params.size.amax(0), largest)  # every side value is reachable
    assert (params.origin >= 0).all()
    assert (params.origin + params.size <= torch.tensor(shape[2:])).all()
    for b in range(4):
        ranks = params.rank[params.sample == b].sort().values
        assert torch.equal(ranks, torch.arange(10000))
    volume = params.size.prod(dim=1)
    start = params.perm_start.tolist()
    for m in range(0, 40000, 997):
        local = params.perm[start[m]:start[m] + int(volume[m])].long()
        assert torch.equal(local.sort().values, torch.arange(int(volume[m])))
    assert abs(volume.float().mean().item() - 3.5 * 3.5 * 2) < 0.5


def test_apply_flag_frequency():
    n = 20000
    params = sample_shuffle_params((n, 1, 10, 10, 10), 0.5, 1,
                                   RandomSource(torch.Generator().manual_seed(2)))
    rate = params.apply.float().mean().item()
    assert abs(rate - 0.5) < 4.5 * (0.25 / n) ** 0.5
    assert params.size.shape[0] == int(params.apply.sum())


def test_unshuffled_batch_is_returned_unchanged(cubes):
    params = sample_shuffle_params(cubes.shape, 0.0, 10000, RandomSource(torch.Generator()))
    out = apply_shuffle(cubes, params)
    assert torch.equal(out, cubes) and out.data_ptr() != cubes.data_ptr()


def test_blocks_outside_the_cube_are_refused(cubes):
    params = hand_params(1, [(0, (62, 0, 0), (3, 1, 1), 0, [0, 1, 2])], [True])
    with pytest.raises(ValueError, match="inside"):
        apply_shuffle(cubes[:1], params)


def test_cubes_smaller_than_ten_voxels_are_refused():
    with pytest.raises(ValueError, match="at least 10"):
        sample_shuffle_params((1, 1, 64, 64, 8), 1.0, 10, RandomSource(torch.Generator()))


# --- permutation pool (CorruptionConfig.shuffle_pool) --------------------------------------


def pool_rows(params: ShuffleParams) -> tuple[torch.Tensor, torch.Tensor]:
    """Per block its shape code and its row in its shape's pool (from ``perm_start``)."""
    size = params.size.long()
    codes = ((size[:, 0] - 1) * 6 + size[:, 1] - 1) * 3 + size[:, 2] - 1
    volume = size.prod(dim=1)
    start = params.perm_start.long()
    base = torch.full((108,), 2**62).scatter_reduce(0, codes, start, "amin")
    shift = start - base[codes]
    assert torch.equal(shift % volume, torch.zeros_like(shift))  # rows are whole permutations
    return codes, shift // volume


def test_pool_blocks_share_permutations_and_still_match_mg_sequential_writes(cubes):
    batch = cubes[:2]
    params = sample_shuffle_params(batch.shape, 1.0, 10000,
                                   RandomSource(torch.Generator().manual_seed(8)), pool=4)
    codes, row = pool_rows(params)
    used = torch.unique(codes)
    volumes = (used // 18 + 1) * (used // 3 % 6 + 1) * (used % 3 + 1)
    assert used.numel() == 108 and params.perm.numel() == 4 * int(volumes.sum())
    assert int(row.max()) == 3 and torch.unique(params.perm_start).numel() == 4 * 108
    assert torch.equal(apply_shuffle(batch, params), sequential_shuffle(batch, params))


def test_pool_rows_are_permutations_picked_uniformly():
    pool = 16
    params = sample_shuffle_params((4, 1, 64, 64, 32), 1.0, 10000,
                                   RandomSource(torch.Generator().manual_seed(9)), pool=pool)
    codes, row = pool_rows(params)
    counts = torch.bincount(row, minlength=pool).double()
    expected = row.numel() / pool
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < (pool - 1) + 5 * (2 * (pool - 1)) ** 0.5  # ~5 sigma above its mean
    for m in range(0, row.numel(), 4999):
        n = int(params.size[m].prod())
        local = params.perm[int(params.perm_start[m]):int(params.perm_start[m]) + n].long()
        assert torch.equal(local.sort().values, torch.arange(n))


def test_pool_permutations_are_uniform_over_calls():
    """Shapes of 3 voxels: each of the 6 orders is about equally frequent in the pools."""
    seen = torch.zeros(6)
    orders = {order: index for index, order in enumerate(
        [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)])}
    generator = torch.Generator().manual_seed(10)
    for _ in range(15):
        params = sample_shuffle_params((1, 1, 64, 64, 32), 1.0, 10000, RandomSource(generator),
                                       pool=64)
        triples = (params.size.prod(dim=1) == 3).nonzero().squeeze(1)
        for start in torch.unique(params.perm_start[triples]).tolist():
            seen[orders[tuple(params.perm[start:start + 3].tolist())]] += 1
    expected = float(seen.sum()) / 6
    assert float(((seen - expected) ** 2 / expected).sum()) < 5 + 5 * 10 ** 0.5


def test_isolated_pool_blocks_keep_exactly_their_own_voxels(cubes):
    batch = cubes[:2]
    params = sample_shuffle_params(batch.shape, 1.0, 40,
                                   RandomSource(torch.Generator().manual_seed(11)), pool=2)
    out = apply_shuffle(batch, params)
    cover = torch.zeros(batch.shape[0], *batch.shape[2:], dtype=torch.int64)
    regions = []
    for b, (x, y, z), (sx, sy, sz), start in zip(params.sample.tolist(), params.origin.tolist(),
                                                 params.size.tolist(), params.perm_start.tolist()):
        region = (b, slice(x, x + sx), slice(y, y + sy), slice(z, z + sz))
        cover[region] += 1
        regions.append((region, start, sx * sy * sz))
    isolated = 0
    for (b, *box), start, n in regions:
        if int(cover[(b, *box)].max()) > 1:
            continue
        isolated += 1
        before, after = batch[(b, 0, *box)].flatten(), out[(b, 0, *box)].flatten()
        assert torch.equal(after, before[params.perm[start:start + n].long()])
        assert torch.equal(after.sort().values, before.sort().values)
    assert isolated > 40  # most of the 80 blocks overlap no other
    assert torch.equal(out[:, 0][cover == 0], batch[:, 0][cover == 0])


def test_pool_zero_gives_every_block_its_own_permutation():
    params = sample_shuffle_params((2, 1, 30, 30, 20), 1.0, 500,
                                   RandomSource(torch.Generator().manual_seed(12)), pool=0)
    assert params.perm.numel() == int(params.size.prod(dim=1).sum())
    assert torch.unique(params.perm_start).numel() == params.perm_start.numel()
    with pytest.raises(ValueError, match="pool"):
        sample_shuffle_params((2, 1, 30, 30, 20), 1.0, 5, RandomSource(torch.Generator()), -1)


@pytest.mark.parametrize(("perm", "start", "words"), [
    ([0, 1, 5], None, "local voxel indices"),
    ([0, -1, 2], None, "local voxel indices"),
    ([0, 1, 2], [1], "outside perm"),
])
def test_bad_permutations_are_refused(cubes, perm, start, words):
    params = hand_params(1, [(0, (3, 4, 5), (1, 3, 1), 0, perm)], [True])
    if start is not None:
        params = dataclasses.replace(params, perm_start=torch.tensor(start))
    with pytest.raises(ValueError, match=words):
        apply_shuffle(cubes[:1], params)
