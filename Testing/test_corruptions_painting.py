"""In-/out-painting: MG's box counts, box sizes and noise placement."""

from __future__ import annotations

import pytest
import torch
from corruption_cubes import real_cubes

from SARCore.corruptions import PaintParams, RandomSource, apply_paint, sample_paint_params
from SARCore.corruptions.painting import INNER, NONE, OUTER


@pytest.fixture(scope="module")
def cubes(ct_small, brats_flair) -> torch.Tensor:
    return real_cubes(ct_small, brats_flair, per_scan=2)


def draw(shape, seed: int, **overrides) -> PaintParams:
    options = dict(paint_prob=0.9, outer_prob=0.8, inner_max=5, outer_max=5, continue_prob=0.95)
    options.update(overrides)
    return sample_paint_params(shape, rng=RandomSource(torch.Generator().manual_seed(seed)),
                               **options)


def union_mask(params: PaintParams, index: int, spatial: tuple[int, int, int]) -> torch.Tensor:
    """Reference: voxels inside any valid box of sample ``index``, box by box."""
    mask = torch.zeros(spatial, dtype=torch.bool)
    for k in range(params.valid.shape[1]):
        if params.valid[index, k]:
            (x0, y0, z0) = params.lower[index, k].tolist()
            (x1, y1, z1) = params.upper[index, k].tolist()
            mask[x0:x1, y0:y1, z0:z1] = True
    return mask


def test_modes_and_box_counts_follow_mg_probabilities():
    n = 4000
    params = draw((n, 1, 14, 14, 14), seed=1)
    mode, count = params.mode, params.valid.sum(dim=1)
    tol = 4.5 * (0.25 / n) ** 0.5
    assert abs((mode != NONE).float().mean().item() - 0.9) < tol
    assert abs((mode[mode != NONE] == OUTER).float().mean().item() - 0.8) < tol
    assert (count[mode == NONE] == 0).all()
    inner, outer = count[mode == INNER], count[mode == OUTER]
    assert inner.min() == 0 and inner.max() == 5 and outer.min() == 1 and outer.max() == 5
    assert abs((inner == 0).float().mean().item() - 0.05) < 4.5 * (0.05 * 0.95 / len(inner)) ** 0.5
    assert abs((outer == 1).float().mean().item() - 0.05) < 4.5 * (0.05 * 0.95 / len(outer)) ** 0.5
    assert params.noise.shape == (int((mode != NONE).sum()), 1, 14, 14, 14)


def test_box_sides_and_corners_stay_in_mg_ranges():
    spatial = (64, 64, 32)
    params = draw((150, 1, *spatial), seed=2, paint_prob=1.0, outer_prob=0.5)
    dims = torch.tensor(spatial)
    sides = params.upper - params.lower
    for mode, low, high in ((INNER, dims // 6, dims // 3),
                            (OUTER, dims - 4 * dims // 7, dims - 3 * dims // 7)):
        used = params.valid & (params.mode == mode)[:, None]
        chosen = sides[used]
        assert (chosen >= low).all() and (chosen <= high).all()
        assert torch.equal(chosen.amin(0), low) and torch.equal(chosen.amax(0), high)
        corners = params.lower[used]
        assert (corners >= 3).all() and (corners + chosen <= dims - 3).all()


def test_inner_painting_fills_boxes_with_noise_only(cubes):
    params = draw(cubes.shape, seed=3, paint_prob=1.0, outer_prob=0.0)
    out = apply_paint(cubes, params)
    for b in range(cubes.shape[0]):
        inside = union_mask(params, b, cubes.shape[2:])
        assert torch.equal(out[b, 0][inside], params.noise[b, 0][inside])
        assert torch.equal(out[b, 0][~inside], cubes[b, 0][~inside])


def test_outer_painting_keeps_boxes_of_the_original(cubes):
    params = draw(cubes.shape, seed=4, paint_prob=1.0, outer_prob=1.0)
    out = apply_paint(cubes, params)
    for b in range(cubes.shape[0]):
        inside = union_mask(params, b, cubes.shape[2:])
        assert inside.any() and not inside.all()
        assert torch.equal(out[b, 0][inside], cubes[b, 0][inside])
        assert torch.equal(out[b, 0][~inside], params.noise[b, 0][~inside])
    assert 0 <= out.min() and out.max() < 1 + 1e-6


def test_unpainted_samples_and_input_stay_untouched(cubes):
    params = draw(cubes.shape, seed=5, paint_prob=0.5)
    before = cubes.clone()
    out = apply_paint(cubes, params)
    assert torch.equal(cubes, before)
    unpainted = params.mode == NONE
    assert 0 < int(unpainted.sum()) < cubes.shape[0]  # seed chosen to mix both cases
    assert torch.equal(out[unpainted], cubes[unpainted])


def test_noise_that_does_not_fit_is_refused(cubes):
    params = draw(cubes.shape, seed=6, paint_prob=1.0)
    wrong = PaintParams(params.mode, params.lower, params.upper, params.valid, params.noise[1:])
    with pytest.raises(ValueError, match="noise"):
        apply_paint(cubes, wrong)


def test_cubes_too_small_for_mg_boxes_are_refused():
    with pytest.raises(ValueError, match="at least 14"):
        draw((2, 1, 64, 64, 12), seed=7)


def test_noise_is_drawn_only_where_it_is_used():
    params = draw((12, 1, 64, 64, 32), seed=8, paint_prob=1.0, outer_prob=0.5)
    assert 0 < int((params.mode == INNER).sum()) < 12
    for slot in range(12):
        inside = union_mask(params, slot, (64, 64, 32))
        noise = params.noise[slot, 0]
        if params.mode[slot] == INNER:  # boxes only (MG may draw none); the rest stays zero
            assert (noise[~inside] == 0).all()
            assert not inside.any() or (noise[inside] > 0).float().mean() > 0.99
        else:  # the whole cube, uniform
            assert abs(noise.mean().item() - 0.5) < 0.01 and noise.min() >= 0 and noise.max() < 1
