"""Sliding-window inference: window placement, Gaussian weights, blending, whole-volume pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from SARCore.inference.runtime import Predictor, fuse_batchnorm, prepare_network
from SARCore.inference.sliding_window import (
    MIN_WEIGHT,
    WindowPlan,
    choose_window,
    gaussian_weights,
    sliding_window_predict,
    window_starts,
)
from SARCore.io.arrays import image_to_array
from SARCore.models import UNet3D


@pytest.fixture(scope="module")
def flair_block(brats_flair) -> np.ndarray:
    """A real 45 x 40 x 21 FLAIR block through the tumor, as ``(1, X, Y, Z)`` float32."""
    image = image_to_array(sitk.ReadImage(str(brats_flair)), np.float32)
    return image[60:105, 90:130, 50:71][None].copy()


def test_gaussian_weights_follow_the_formula() -> None:
    weights = gaussian_weights((8, 8, 8))  # sigma = 8 / 8 = 1 voxel, centre at 3.5
    assert weights.shape == (8, 8, 8) and weights.dtype == np.float32
    assert weights.max() == pytest.approx(1.0, rel=1e-6)  # the four central voxels... and
    assert weights[3, 3, 3] == weights[4, 4, 4] == weights.max()  # symmetric
    # one axis from offset 0.5 to 3.5: exp(-(3.5^2 - 0.5^2) / 2) = exp(-6)
    assert weights[0, 3, 3] == pytest.approx(math.exp(-6.0), rel=1e-5)
    # a corner is exp(-18) < MIN_WEIGHT: raised to the floor, never zero
    assert weights[0, 0, 0] == pytest.approx(MIN_WEIGHT)
    np.testing.assert_array_equal(weights, weights[::-1, ::-1, ::-1])


def test_window_starts_cover_evenly() -> None:
    # 240 voxels, window 64, overlap 0.25: step 48 -> ceil(176 / 48) + 1 = 5 windows
    assert window_starts(240, 64, 0.25) == [0, 44, 88, 132, 176]
    assert window_starts(64, 64, 0.25) == [0]
    assert window_starts(10, 16, 0.25) == [0]  # smaller than the window: padded later
    starts = window_starts(155, 32, 0.5)
    assert starts[0] == 0 and starts[-1] == 155 - 32
    assert max(np.diff(starts)) <= 16  # overlap at least half a window


def test_choose_window_trades_window_size_for_fewer_windows() -> None:
    shape, patch = (240, 240, 155), (64, 64, 32)
    assert choose_window(shape, patch, 0.25, 10**9) == (240, 240, 160)  # one window
    assert choose_window(shape, patch, 0.25, 64 * 64 * 32) == patch  # budget = one patch
    window = choose_window(shape, patch, 0.25, 2_000_000)
    assert all(w % 8 == 0 and w >= p for w, p in zip(window, patch))
    assert math.prod(window) <= 2_000_000
    plan, patch_plan = WindowPlan.make(shape, window, 0.25), WindowPlan.make(shape, patch, 0.25)
    assert patch_plan.count == 175  # the MONAI configuration the benchmark compares with
    assert plan.count * math.prod(window) < patch_plan.count * math.prod(patch)


def _pointwise(batch: torch.Tensor) -> torch.Tensor:
    """A 'network' without spatial context: any window layout must give the same result."""
    return torch.sigmoid(batch)


@pytest.mark.parametrize("window, overlap, batch", [((16, 16, 8), 0.25, 1),
                                                    ((16, 24, 8), 0.5, 3),
                                                    ((48, 40, 24), 0.25, 2)])
def test_blending_is_a_weighted_average(flair_block, window, overlap, batch) -> None:
    """Every voxel's weights sum to one, across slabs and batches, whatever the layout."""
    result = sliding_window_predict(flair_block, _pointwise, 1, window, overlap, batch)
    assert result.shape == flair_block.shape and result.dtype == np.float16
    expected = 1.0 / (1.0 + np.exp(-flair_block))
    np.testing.assert_allclose(result.astype(np.float32), expected, atol=1e-3)


def test_window_progress_is_reported(flair_block) -> None:
    seen = []
    sliding_window_predict(flair_block, _pointwise, 1, (16, 16, 8), 0.25, 4,
                           progress=lambda done, total: seen.append((done, total)))
    plan = WindowPlan.make(flair_block.shape[1:], (16, 16, 8), 0.25)
    per_slab = len(plan.starts[0]) * len(plan.starts[1])
    assert len(seen) == len(plan.starts[2]) * math.ceil(per_slab / 4)  # one call per batch
    assert seen[-1] == (plan.count, plan.count)
    assert all(a[0] < b[0] for a, b in zip(seen, seen[1:]))


@pytest.fixture(scope="module")
def net() -> UNet3D:
    torch.manual_seed(3)
    return UNet3D(1, 1, 8).eval()


def test_one_window_equals_a_direct_forward_pass(net, flair_block) -> None:
    block = np.ascontiguousarray(flair_block[:, :40, :40, :16])  # sides already multiples of 8
    predictor = Predictor(prepare_network(net, torch.device("cpu")), "sigmoid",
                          torch.device("cpu"))
    result = sliding_window_predict(block, predictor, 1, (40, 40, 16))
    with torch.inference_mode():
        direct = torch.sigmoid(net(torch.from_numpy(block)[None]))[0].numpy()
    np.testing.assert_allclose(result.astype(np.float32), direct, atol=1e-3)


def test_small_volume_is_padded_with_its_edge(net, flair_block) -> None:
    """45 x 40 x 21 in a 48 x 40 x 24 window = the direct pass on the edge-padded volume."""
    predictor = Predictor(fuse_batchnorm(net), "sigmoid", torch.device("cpu"),
                          channels_last=False)
    result = sliding_window_predict(flair_block, predictor, 1, (48, 40, 24))
    padded = np.pad(flair_block, [(0, 0), (0, 3), (0, 0), (0, 3)], mode="edge")
    with torch.inference_mode():
        direct = torch.sigmoid(net(torch.from_numpy(padded)[None]))[0].numpy()
    np.testing.assert_allclose(result.astype(np.float32), direct[:, :45, :, :21], atol=1e-3)


def test_fused_network_matches_the_original(net, flair_block) -> None:
    block = torch.from_numpy(np.ascontiguousarray(flair_block[:, :40, :40, :16]))[None]
    with torch.inference_mode():
        original = net(block)
        fused = prepare_network(net, torch.device("cpu"))(
            block.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(fused, original, atol=1e-5, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fuse_batchnorm(net).modules())


def test_flip_tta_averages_mirrored_passes(net, flair_block) -> None:
    block = torch.from_numpy(np.ascontiguousarray(flair_block[:, :32, :32, :16]))[None]
    cpu = torch.device("cpu")
    tta = Predictor(net, "sigmoid", cpu, tta=True, channels_last=False)(block)
    with torch.inference_mode():
        expected = torch.stack([torch.sigmoid(net(block.flip(a))).flip(a) if a else
                                torch.sigmoid(net(block))
                                for a in [(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4),
                                          (2, 3, 4)]]).mean(0)
    torch.testing.assert_close(tta, expected, atol=1e-6, rtol=1e-5)
    assert len(Predictor(net, "sigmoid", cpu, tta=True).flips) == 8


def test_softmax_probabilities_sum_to_one(flair_block) -> None:
    torch.manual_seed(0)
    net3 = UNet3D(1, 3, 8).eval()
    predictor = Predictor(prepare_network(net3, torch.device("cpu")), "softmax",
                          torch.device("cpu"))
    result = sliding_window_predict(flair_block, predictor, 3, (24, 24, 16), 0.25, 2)
    assert result.shape == (3, *flair_block.shape[1:])
    np.testing.assert_allclose(result.astype(np.float32).sum(0), 1.0, atol=3e-3)


def test_bad_arguments_are_refused(flair_block) -> None:
    with pytest.raises(ValueError, match="overlap"):
        sliding_window_predict(flair_block, _pointwise, 1, (16, 16, 8), overlap=1.0)
    with pytest.raises(ValueError, match=r"\(C, X, Y, Z\)"):
        sliding_window_predict(flair_block[0], _pointwise, 1, (16, 16, 8))
