"""Bezier intensity transform: MG's curve table and interpolation, batched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from corruption_cubes import real_cubes
from scipy.special import comb

from SARCore.corruptions import (
    NonlinearParams,
    RandomSource,
    apply_nonlinear,
    sample_nonlinear_params,
)


@pytest.fixture(scope="module")
def cubes(ct_small, brats_flair) -> torch.Tensor:
    return real_cubes(ct_small, brats_flair, per_scan=2)


def mg_transform(values: np.ndarray, control: np.ndarray, invert: bool) -> np.ndarray:
    """MG's ``nonlinear_transformation`` for given control points (100,000-point table)."""
    points = [[0, 0], control[0], control[1], [1, 1]]
    t = np.linspace(0.0, 1.0, 100000)
    basis = np.array([comb(3, i) * t ** (3 - i) * (1 - t) ** i for i in range(4)])
    xs = np.array([p[0] for p in points]) @ basis
    ys = np.array([p[1] for p in points]) @ basis
    if invert:
        xs = np.sort(xs)
    else:
        xs, ys = np.sort(xs), np.sort(ys)
    return np.interp(values, xs, ys)


def fixed_params(controls: list, invert: list[bool]) -> NonlinearParams:
    return NonlinearParams(torch.ones(len(invert), dtype=torch.bool),
                           torch.tensor(controls, dtype=torch.float32), torch.tensor(invert))


CONTROLS = [[[0.1, 0.9], [0.8, 0.2]], [[0.0, 1.0], [0.0, 1.0]],  # steep start (vertical tangent)
            [[0.7, 0.3], [0.95, 0.05]], [[0.35, 0.6], [0.5, 0.99]]]


def test_matches_mg_interpolation_on_real_cubes(cubes):
    invert = [False, True, False, True]
    out = apply_nonlinear(cubes, fixed_params(CONTROLS, invert))
    for b in range(cubes.shape[0]):
        expected = mg_transform(cubes[b].numpy().ravel(), np.array(CONTROLS[b]), invert[b])
        assert np.abs(out[b].numpy().ravel() - expected).max() < 1e-3


@pytest.mark.parametrize("invert", [False, True])
def test_mapping_is_monotone_on_a_ramp(invert):
    ramp = torch.linspace(0, 1, 64 * 64 * 32).view(1, 1, 64, 64, 32).expand(4, -1, -1, -1, -1)
    controls = sample_nonlinear_params(4, 1.0, 0.0, RandomSource(torch.Generator().manual_seed(4)))
    params = NonlinearParams(controls.apply, controls.controls, torch.full((4,), invert))
    out = apply_nonlinear(ramp.contiguous(), params).view(4, -1)
    steps = out[:, 1:] - out[:, :-1]
    if invert:
        assert (steps <= 1e-6).all()
        assert torch.allclose(out[:, 0], torch.ones(4))
        assert torch.allclose(out[:, -1], torch.zeros(4))
    else:
        assert (steps >= -1e-6).all()
        assert torch.allclose(out[:, 0], torch.zeros(4))
        assert torch.allclose(out[:, -1], torch.ones(4))
    assert (out.max(1).values - out.min(1).values > 0.99).all()  # the whole range is used


def test_sampled_frequencies_follow_the_config():
    n = 20000
    params = sample_nonlinear_params(n, 0.9, 0.5, RandomSource(torch.Generator().manual_seed(6)))
    applied = params.apply.float().mean().item()
    inverted = params.invert[params.apply].float().mean().item()
    assert abs(applied - 0.9) < 4.5 * (0.9 * 0.1 / n) ** 0.5
    assert abs(inverted - 0.5) < 4.5 * (0.25 / (0.9 * n)) ** 0.5
    assert params.controls.min() >= 0 and params.controls.max() < 1
    assert abs(params.controls.mean().item() - 0.5) < 0.01


def test_only_chosen_samples_change_and_input_is_kept(cubes):
    params = fixed_params(CONTROLS, [False, True, False, True])
    params = NonlinearParams(torch.tensor([True, False, False, True]), params.controls,
                             params.invert)
    before = cubes.clone()
    out = apply_nonlinear(cubes, params)
    assert torch.equal(cubes, before)
    assert torch.equal(out[1:3], cubes[1:3])
    assert not torch.equal(out[0], cubes[0]) and not torch.equal(out[3], cubes[3])
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_other_float_dtypes_are_kept(cubes, dtype):
    params = fixed_params(CONTROLS, [True, False, True, False])
    out = apply_nonlinear(cubes.to(dtype), params)
    assert out.dtype == dtype
    reference = apply_nonlinear(cubes, params)
    assert torch.allclose(out.float(), reference, atol=2e-3)
