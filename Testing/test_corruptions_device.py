"""The corruptions off the CPU: no host reads, and the same result as the CPU paths.

A GPU cannot be asked here, so the ``meta`` device stands in for it: its tensors have
shapes but no values, so anything that reads a value back to the host (``.tolist()``,
``int()``, ``bool()``, ``.item()``, ``nonzero()``, NumPy conversion) fails there just
as it would stall a CUDA stream. The batched device paths are then compared, value for
value, with the CPU paths on real cubes.
"""

from __future__ import annotations

import pytest
import torch
from corruption_cubes import real_cubes

from SARCore.corruptions import (
    CorruptionConfig,
    ModelsGenesisCorruption,
    RandomSource,
    apply_flip,
    apply_nonlinear,
    apply_paint,
    apply_shuffle,
    sample_flip_params,
    sample_nonlinear_params,
    sample_paint_params,
    sample_shuffle_params,
)
from SARCore.corruptions.flip import _gather_flipped
from SARCore.corruptions.local_shuffle import scatter_shuffle
from SARCore.corruptions.nonlinear import _map_all
from SARCore.corruptions.painting import _paint_masked

HOST_READS = ("tolist", "item", "numpy", "__bool__", "__int__", "__float__", "nonzero")


def _refuse(name: str):
    """``Tensor.<name>`` that raises for tensors off the CPU (host tables built from CPU
    tensors, once per cube shape, are allowed)."""
    original = getattr(torch.Tensor, name)

    def refuse(self: torch.Tensor, *args: object, **kwargs: object) -> object:
        if self.device.type != "cpu":
            raise AssertionError(f"the corruption read a {self.device.type} tensor back to "
                                 f"the host: Tensor.{name}")
        return original(self, *args, **kwargs)
    return refuse


@pytest.fixture
def no_host_reads(monkeypatch: pytest.MonkeyPatch):
    """Within the block, every host read of a tensor off the CPU raises (undone on exit)."""
    class Guard:
        def __enter__(self) -> None:
            for name in HOST_READS:
                monkeypatch.setattr(torch.Tensor, name, _refuse(name))

        def __exit__(self, *exc: object) -> None:
            monkeypatch.undo()
    return Guard()


@pytest.mark.parametrize("pool", [64, 0])
def test_whole_pipeline_runs_on_the_meta_device_without_host_reads(no_host_reads, pool):
    corruption = ModelsGenesisCorruption(CorruptionConfig(shuffle_pool=pool))
    batch = torch.empty(4, 1, 64, 64, 32, device="meta")
    with no_host_reads:
        result = corruption.corrupt(batch)
    for tensor in (result.corrupted, result.target):
        assert tensor.device.type == "meta" and tensor.shape == batch.shape
        assert tensor.dtype == torch.float32
    assert result.record.flip_count.shape == (4,) and result.record.shuffled.device.type == "meta"
    assert result.params.paint.noise.shape == batch.shape  # one noise cube per sample


def _sources(seed: int) -> tuple[RandomSource, RandomSource]:
    return (RandomSource(torch.Generator().manual_seed(seed), use_numpy=True),
            RandomSource(torch.Generator().manual_seed(seed), use_numpy=False))


@pytest.fixture(scope="module")
def cubes(ct_small, brats_flair) -> torch.Tensor:
    return real_cubes(ct_small, brats_flair, per_scan=3)


@pytest.mark.parametrize("pool", [16, 0])
def test_scatter_shuffle_equals_the_host_plan(cubes, pool):
    for rng in _sources(1):
        params = sample_shuffle_params(tuple(cubes.shape), 0.5, 3000, rng, pool)
        if not rng.uses_numpy:  # blocks for every sample, the unshuffled ones ignored
            assert params.sample.numel() == cubes.shape[0] * 3000
            assert 0 < int(params.apply.sum()) < cubes.shape[0]
        host = apply_shuffle(cubes, params)
        assert torch.equal(scatter_shuffle(cubes, params), host)
        assert torch.equal(host[~params.apply], cubes[~params.apply])
        assert not torch.equal(host[params.apply], cubes[params.apply])


def test_masked_paint_equals_box_copies(cubes):
    for rng in _sources(4):
        params = sample_paint_params(tuple(cubes.shape), 0.8, 0.5, 5, 5, 0.95, rng)
        host = apply_paint(cubes, params)
        assert torch.equal(_paint_masked(cubes.clone(), params), host)
        assert not torch.equal(host, cubes)


def test_batched_curves_equal_the_per_sample_loop(cubes):
    for rng in _sources(5):
        params = sample_nonlinear_params(cubes.shape[0], 0.6, 0.5, rng)
        host = apply_nonlinear(cubes, params)
        assert torch.equal(_map_all(cubes.clone(), params, 1000), host)
        half = cubes.half()
        assert torch.equal(_map_all(half.clone(), params, 1000), apply_nonlinear(half, params))


def test_gathered_flips_equal_per_sample_flips(cubes):
    params = sample_flip_params(cubes.shape[0], 0.6, 3, _sources(6)[0])
    assert int((params.axis_parity().sum(1) > 0).sum()) > 1
    assert torch.equal(_gather_flipped(cubes, params.axis_parity()), apply_flip(cubes, params))
    two = torch.cat([cubes, cubes.flip(1)], dim=1)  # channels flip alike
    assert torch.equal(_gather_flipped(two, params.axis_parity()), apply_flip(two, params))

