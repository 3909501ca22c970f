"""RandomSource: both backends (NumPy on CPU, torch elsewhere) and device resolution.

The torch backend is the one CUDA generators use; ``use_numpy=False`` runs it on CPU.
"""

from __future__ import annotations

import pytest
import torch

from SARCore.corruptions import (
    ModelsGenesisCorruption,
    RandomSource,
    apply_paint,
    apply_shuffle,
    sample_paint_params,
    sample_shuffle_params,
)
from SARCore.corruptions.rng import sampling_device


def source(seed: int, use_numpy: bool) -> RandomSource:
    return RandomSource(torch.Generator().manual_seed(seed), use_numpy=use_numpy)


def test_sampling_happens_on_the_generators_device():
    assert sampling_device(None, "cpu") == torch.device("cpu")
    assert sampling_device(None, "meta") == torch.device("meta")
    assert sampling_device(torch.Generator(), "cuda") == torch.device("cpu")
    assert RandomSource(torch.Generator(), "cuda").uses_numpy
    drawn = RandomSource(None, "meta").uniform(3, 2)
    assert drawn.device.type == "meta" and drawn.shape == (3, 2)
    with pytest.raises(ValueError, match="CPU generator"):
        RandomSource(None, "meta", use_numpy=True)


@pytest.mark.parametrize("use_numpy", [True, False])
def test_draws_have_the_promised_ranges(use_numpy):
    rng = source(1, use_numpy)
    u = rng.uniform(50000)
    assert u.dtype == torch.float32 and u.min() >= 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.01
    low, high = torch.tensor([0, 3, -2]), torch.tensor([0, 9, 2])
    ints = rng.integers(low, high, 20000, 3)
    assert ints.dtype == torch.int64
    assert torch.equal(ints.amin(0), low) and torch.equal(ints.amax(0), high)  # both ends
    counts = torch.bincount(ints[:, 1] - 3, minlength=7).float()
    assert (counts / counts.sum() - 1 / 7).abs().max() < 0.02
    rows = rng.permutations(500, 27)
    assert rows.dtype == torch.int32
    assert torch.equal(rows.sort(dim=1).values, torch.arange(27, dtype=torch.int32).expand(500, -1))
    first = (rows[:, 0] == 0).float().mean().item()  # uniform position of element 0
    assert abs(first - 1 / 27) < 0.03
    with pytest.raises(ValueError, match="empty range"):
        rng.integers(5, 4, 3)


@pytest.mark.parametrize("use_numpy", [True, False])
def test_same_generator_state_same_draws(use_numpy):
    a, b = source(7, use_numpy), source(7, use_numpy)
    assert torch.equal(a.uniform(10), b.uniform(10))
    assert torch.equal(a.permutations(4, 9), b.permutations(4, 9))
    assert not torch.equal(source(8, use_numpy).uniform(10), source(7, use_numpy).uniform(10))


def test_torch_backend_drives_the_transforms_like_on_a_gpu():
    shape = (3, 1, 32, 32, 16)
    batch = torch.rand(shape)
    shuffle = sample_shuffle_params(shape, 1.0, 2000, source(3, use_numpy=False))
    paint = sample_paint_params(shape, 1.0, 0.5, 5, 5, 0.95, source(3, use_numpy=False))
    shuffled, painted = apply_shuffle(batch, shuffle), apply_paint(batch, paint)
    for b in range(3):  # shuffling moves values within the cube, never creates them
        assert torch.isin(shuffled[b], batch[b]).all()
    assert painted.min() >= 0 and painted.max() <= 1
    assert not torch.equal(painted, batch) and not torch.equal(shuffled, batch)


def test_cpu_generator_result_does_not_depend_on_the_batch_device_argument():
    corruption = ModelsGenesisCorruption()
    shape = (2, 1, 32, 32, 16)
    on_cpu = corruption.sample_params(shape, torch.Generator().manual_seed(9), device="cpu")
    for_gpu = corruption.sample_params(shape, torch.Generator().manual_seed(9), device="cuda")
    assert torch.equal(on_cpu.shuffle.perm, for_gpu.shuffle.perm)
    assert torch.equal(on_cpu.paint.noise, for_gpu.paint.noise)


@pytest.mark.parametrize("use_numpy", [True, False])
def test_below_draws_each_element_under_its_own_bound(use_numpy):
    span = torch.tensor([1, 2, 7, 64], dtype=torch.int32).repeat(20000, 1)
    drawn = source(13, use_numpy).below(span)
    assert drawn.dtype == torch.int32 and drawn.shape == span.shape
    assert (drawn >= 0).all() and (drawn < span).all()
    assert torch.equal(drawn.amax(0), span[0] - 1)  # the top value is reachable
    counts = torch.bincount(drawn[:, 2].long(), minlength=7).float()
    assert (counts / counts.sum() - 1 / 7).abs().max() < 0.02


def test_torch_backend_draws_pooled_shuffles_like_on_a_gpu():
    shape = (2, 1, 32, 32, 16)
    batch = torch.rand(shape)
    params = sample_shuffle_params(shape, 1.0, 3000, source(14, use_numpy=False), pool=8)
    # Blocks up to 3x3x1: 8 rows of every shape, whose volumes sum to (1+2+3) * (1+2+3).
    assert params.perm.numel() == 8 * 36
    shuffled = apply_shuffle(batch, params)
    for b in range(2):
        assert torch.isin(shuffled[b], batch[b]).all() and not torch.equal(shuffled[b], batch[b])
