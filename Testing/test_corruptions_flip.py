"""Flip augmentation: MG's "up to 3 flips, each with probability 0.4" loop."""

from __future__ import annotations

import pytest
import torch
from corruption_cubes import real_cubes

from SARCore.corruptions import FlipParams, RandomSource, apply_flip, sample_flip_params


@pytest.fixture(scope="module")
def cubes(ct_small, brats_flair) -> torch.Tensor:
    return real_cubes(ct_small, brats_flair, per_scan=2)


def test_flip_counts_follow_the_stopping_loop():
    n = 20000
    params = sample_flip_params(n, 0.4, 3, RandomSource(torch.Generator().manual_seed(1)))
    expected = [0.6, 0.4 * 0.6, 0.4**2 * 0.6, 0.4**3]
    for k, p in enumerate(expected):
        rate = (params.count == k).float().mean().item()
        assert abs(rate - p) < 4.5 * (p * (1 - p) / n) ** 0.5, (k, rate, p)
    used = params.axes[torch.arange(3) < params.count[:, None]]
    shares = torch.bincount(used, minlength=3).float() / used.numel()
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.02)


def test_apply_flips_each_axis_by_parity(cubes):
    params = FlipParams(count=torch.tensor([0, 1, 2, 3]),
                        axes=torch.tensor([[1, 1, 1], [2, 0, 0], [0, 0, 1], [0, 1, 2]]))
    before = cubes.clone()
    out = apply_flip(cubes, params)
    assert torch.equal(cubes, before)
    assert torch.equal(out[0], cubes[0])                       # no flip
    assert torch.equal(out[1], cubes[1].flip(3))               # z
    assert torch.equal(out[2], cubes[2])                       # x twice cancels
    assert torch.equal(out[3], cubes[3].flip(1, 2, 3))         # x, y, z
    assert params.axis_parity().tolist() == [[False] * 3, [False, False, True],
                                             [False] * 3, [True] * 3]


def test_flip_preserves_values_and_dtype(cubes):
    params = sample_flip_params(4, 1.0, 3, RandomSource(torch.Generator().manual_seed(2)))
    out = apply_flip(cubes.double(), params)
    assert out.dtype == torch.float64 and out.shape == cubes.shape
    assert torch.equal(out.flatten(1).sort(1).values, cubes.double().flatten(1).sort(1).values)
