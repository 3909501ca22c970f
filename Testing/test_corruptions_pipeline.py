"""ModelsGenesisCorruption: MG's generate_pair on real cubes, replay, records, input checks."""

from __future__ import annotations

import pytest
import torch
from corruption_cubes import real_cubes

from SARCore.config import from_mapping
from SARCore.corruptions import (
    CorruptionConfig,
    CorruptionRecord,
    ModelsGenesisCorruption,
    apply_flip,
)
from SARCore.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def cubes(ct_small, brats_flair) -> torch.Tensor:
    return real_cubes(ct_small, brats_flair, per_scan=2)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pair_keeps_shape_dtype_and_range(cubes):
    result = ModelsGenesisCorruption().corrupt(cubes, seeded(0))
    for tensor in (result.corrupted, result.target):
        assert tensor.shape == cubes.shape and tensor.dtype == cubes.dtype
        assert tensor.min() >= 0 and tensor.max() <= 1
    assert torch.equal(result.target, apply_flip(cubes, result.params.flip))
    assert not torch.equal(result.corrupted, result.target)


def test_record_says_which_samples_changed(cubes):
    config = CorruptionConfig(shuffle_prob=0.5, nonlinear_prob=0.5, paint_prob=0.5)
    corruption = ModelsGenesisCorruption(config)
    untouched = touched = 0
    for seed in range(6):
        result = corruption.corrupt(cubes, seeded(seed))
        r = result.record
        changed = r.shuffled | r.nonlinear | r.inner_painted | r.outer_painted
        for b in range(cubes.shape[0]):
            same = torch.equal(result.corrupted[b], result.target[b])
            assert same != bool(changed[b])
        untouched += int((~changed).sum())
        touched += int(changed.sum())
        assert not (r.inner_painted & r.outer_painted).any()
        assert not (r.inverted & ~r.nonlinear).any()
    assert untouched > 0 and touched > 0


def test_transform_frequencies_follow_the_config():
    n = 4000
    corruption = ModelsGenesisCorruption(CorruptionConfig(shuffle_blocks=1))
    params = corruption.sample_params((n, 1, 14, 14, 14), seeded(1))
    record = CorruptionRecord.from_params(params)
    rates = {"flip": ((record.flip_count > 0), 0.4), "shuffle": (record.shuffled, 0.5),
             "nonlinear": (record.nonlinear, 0.9), "inverted": (record.inverted, 0.45),
             "inner": (record.inner_painted, 0.18), "outer": (record.outer_painted, 0.72)}
    for name, (flags, p) in rates.items():
        rate = flags.float().mean().item()
        assert abs(rate - p) < 4.5 * (p * (1 - p) / n) ** 0.5, (name, rate, p)


def test_same_seed_same_pair_other_seed_other_pair(cubes):
    corruption = ModelsGenesisCorruption()
    first, again = corruption(cubes, seeded(11)), corruption(cubes, seeded(11))
    other = corruption(cubes, seeded(12))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_params_replay_the_same_corruption(cubes):
    corruption = ModelsGenesisCorruption()
    result = corruption.corrupt(cubes, seeded(21))
    corrupted, target = corruption.apply(cubes, result.params)
    assert torch.equal(corrupted, result.corrupted) and torch.equal(target, result.target)


def test_without_generator_the_global_torch_seed_decides(cubes):
    corruption = ModelsGenesisCorruption()
    with torch.random.fork_rng():  # leave the global stream as other tests expect it
        torch.manual_seed(5)
        first = corruption(cubes[:2])
        torch.manual_seed(5)
        assert torch.equal(corruption(cubes[:2])[0], first[0])


def test_half_precision_cubes_stay_half(cubes):
    corrupted, target = ModelsGenesisCorruption()(cubes[:2].half(), seeded(3))
    assert corrupted.dtype == target.dtype == torch.float16
    assert corrupted.min() >= 0 and corrupted.max() <= 1


def test_params_move_between_devices_without_copies(cubes):
    params = ModelsGenesisCorruption().sample_params(cubes[:2].shape, seeded(4))
    assert params.to("cpu").shuffle.perm.data_ptr() == params.shuffle.perm.data_ptr()
    moved = params.to("meta")
    leaves = [moved.flip.count, moved.shuffle.perm, moved.nonlinear.controls, moved.paint.noise]
    assert all(t.device.type == "meta" for t in leaves)


def test_slight_overshoot_is_clamped(cubes):
    batch = cubes[:2].clone()
    batch[0, 0, 0, 0, 0], batch[1, 0, 5, 5, 5] = 1.0005, -0.0005
    corrupted, target = ModelsGenesisCorruption()(batch, seeded(6))
    assert target.min() >= 0 and target.max() <= 1 and corrupted.max() <= 1


@pytest.mark.parametrize(("make", "error", "words"), [
    (lambda c: c.numpy(), TypeError, "torch.Tensor"),
    (lambda c: c[:, 0], ValueError, r"\(B, 1, X, Y, Z\)"),
    (lambda c: c.expand(-1, 2, -1, -1, -1), ValueError, r"\(B, 1, X, Y, Z\)"),
    (lambda c: (c * 255).to(torch.uint8), TypeError, "float"),
    (lambda c: c * 2, DataError, r"\[0, 1\]"),
    (lambda c: torch.where(c > 0.5, torch.nan, c), DataError, r"\[0, 1\]"),
    (lambda c: c[..., :12], ValueError, "at least"),
])
def test_unusable_batches_get_clear_errors(cubes, make, error, words):
    with pytest.raises(error, match=words):
        ModelsGenesisCorruption()(make(cubes[:2]), seeded(0))


@pytest.mark.parametrize(("options", "words"), [
    ({"flip_prob": 1.2}, "flip_prob must be a number in"),
    ({"shuffle_blocks": 0}, "shuffle_blocks must be a positive integer"),
    ({"max_flips": True}, "max_flips must be a positive integer"),
    ({"bezier_points": 1}, "bezier_points must be at least 2"),
    ({"shuffle_pool": -1}, "shuffle_pool must be 0"),
    ({"shuffle_pool": True}, "shuffle_pool must be 0"),
    ({"paint_probability": 0.5}, "did you mean 'paint_prob'"),
])
def test_bad_settings_name_the_option(options, words):
    with pytest.raises(ConfigError, match=words):
        from_mapping(CorruptionConfig, options, "corruption")


@pytest.mark.parametrize("pool", [0, 16])
def test_shuffle_pool_setting_reaches_the_sampler(cubes, pool):
    corruption = ModelsGenesisCorruption(CorruptionConfig(shuffle_prob=1.0, shuffle_pool=pool))
    batch = cubes[:1]
    shuffle = corruption.sample_params(batch.shape, seeded(7)).shuffle
    volume = shuffle.size.prod(dim=1)
    if pool == 0:  # one permutation per block
        assert shuffle.perm.numel() == int(volume.sum())
    else:  # 16 per block shape drawn (all 108 shapes occur among 10,000 blocks)
        assert shuffle.perm.numel() == 16 * sum((x + 1) * (y + 1) * (z + 1) for x in range(6)
                                                for y in range(6) for z in range(3))
    corrupted, _ = corruption.apply(batch, corruption.sample_params(batch.shape, seeded(7)))
    assert torch.equal(corrupted, corruption(batch, seeded(7))[0])
