"""Baseline tasks end to end: heads, losses, learning on real cubes, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from baseline_cubes import real_cubes

from SARCore.errors import ConfigError
from SARCore.models.baselines import CPCHead, DenseClassifier
from SARCore.models.unet3d import UNet3D
from SARCore.pretrain import baseline_tasks as tasks
from SARCore.pretrain.proxy_tasks import PatchGrid

METRICS = {"rotation": "rotation_acc", "rpl": "rpl_acc", "jigsaw": "jigsaw_acc", "cpc": "cpc_acc"}


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread avoids OpenMP spin-waits on shared 2-core machines."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cubes(ct_small) -> torch.Tensor:
    return real_cubes(ct_small, 4)


def _model(task, seed: int = 0) -> tuple[UNet3D, torch.nn.Module]:
    torch.manual_seed(seed)
    unet = UNet3D(width_divisor=8)
    return unet, task.build_head(unet.encoder_channels, unet.width_divisor)


def test_registry_names_and_classes():
    assert list(tasks.BASELINE_TASKS) == ["rotation", "rpl", "jigsaw", "cpc"]
    assert {name: task.n_classes for name, task in tasks.BASELINE_TASKS.items()} == {
        "rotation": 10, "rpl": 26, "jigsaw": 100, "cpc": None}
    assert all(task.name == name for name, task in tasks.BASELINE_TASKS.items())


def test_classifier_head_follows_taleb_scaled_by_width_divisor():
    head = DenseClassifier(27 * 64, 100, width_divisor=8)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1728, 256), (256, 128), (128, 100)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules()) == 2
    assert all(m.p == 0.5 for m in head.modules() if isinstance(m, torch.nn.Dropout))
    assert head(torch.rand(3, 27, 64)).shape == (3, 100)


def test_cpc_head_shapes():
    head = CPCHead(64, n_targets=2, width_divisor=8)
    codes = head.codes(torch.rand(3, 64, 64))
    assert codes.shape == (3, 64, 128)
    assert head.predict(codes[:, :10]).shape == (3, 2, 128)


@pytest.mark.parametrize("name", ["rotation", "rpl", "jigsaw", "cpc"])
def test_default_step_on_real_cubes(name, cubes):
    task = tasks.BASELINE_TASKS[name]
    unet, head = _model(task)
    out = task.step(unet, head, cubes[:2], torch.Generator().manual_seed(0))
    assert set(out) == {"loss", METRICS[name]}
    assert out["loss"].ndim == 0 and math.isfinite(out["loss"].item())
    assert not out[METRICS[name]].requires_grad and 0.0 <= float(out[METRICS[name]]) <= 1.0
    chance = math.log(task.n_classes) if task.n_classes else math.log(2 * 16 * 2)
    assert abs(out["loss"].item() - chance) < 0.5 * chance    # untrained: near chance
    out["loss"].backward()
    first_conv = unet.encoder[0][0][0].weight
    assert first_conv.grad is not None and float(first_conv.grad.abs().sum()) > 0
    assert all(p.grad is not None for p in head.parameters())
    assert all(p.grad is None for p in unet.decoder.parameters())   # encoder-only methods


def test_eval_mode_step_is_deterministic(cubes):
    task = tasks.BASELINE_TASKS["jigsaw"]
    unet, head = _model(task)
    unet.eval(), head.eval()
    with torch.no_grad():
        first = task.step(unet, head, cubes[:1], torch.Generator().manual_seed(9))
        second = task.step(unet, head, cubes[:1], torch.Generator().manual_seed(9))
    assert torch.equal(first["loss"], second["loss"])


#: Small enough for ~30 Adam steps in seconds; same code paths as the defaults.
OVERFIT_CASES = {
    "rotation": (tasks.RotationTask(crop=(16, 16, 16)), 4, None),
    "rpl": (tasks.RelativePatchLocationTask(), 4, None),
    "jigsaw": (tasks.JigsawTask(grid=PatchGrid(patch_size=(8, 8, 8))), 2, None),
    "cpc": (tasks.CPCTask(), 2, (slice(16, 48), slice(16, 48))),   # 32^3: 8^3 patches
}


@pytest.mark.parametrize("name", list(OVERFIT_CASES))
def test_loss_falls_on_a_fixed_batch(name, cubes):
    task, count, window = OVERFIT_CASES[name]
    batch = cubes[:count] if window is None else cubes[:count, :, window[0], window[1], :]
    unet, head = _model(task)
    optimizer = torch.optim.Adam([*unet.parameters(), *head.parameters()], lr=1e-3)
    losses = []
    for _ in range(30):
        out = task.step(unet, head, batch, torch.Generator().manual_seed(1))  # same batch
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    start, end = sum(losses[:3]) / 3, sum(losses[-5:]) / 5
    assert end < 0.5 * start, (name, losses)


@pytest.mark.parametrize("name", ["rotation", "rpl", "jigsaw", "cpc"])
@pytest.mark.parametrize("shape", [(2, 64, 64, 32), (2, 3, 64, 64, 32)])
def test_wrong_cube_shape_raises_value_error(name, shape):
    task = tasks.BASELINE_TASKS[name]
    unet, head = _model(task)
    with pytest.raises(ValueError, match=r"\(B, 1, X, Y, Z\)"):
        task.step(unet, head, torch.rand(shape), torch.Generator())


def test_other_bad_inputs_raise_value_error(cubes):
    rotation = tasks.BASELINE_TASKS["rotation"]
    unet, head = _model(rotation)
    with pytest.raises(ValueError, match="at least 2 cubes"):
        rotation.step(unet, head, cubes[:1], torch.Generator())
    with pytest.raises(ValueError, match="floating point"):
        rotation.step(unet, head, (cubes[:2] * 100).long(), torch.Generator())
    cpc = tasks.BASELINE_TASKS["cpc"]
    unet, head = _model(cpc)
    with pytest.raises(ValueError, match="multiples of 8"):
        cpc.step(unet, head, cubes[:2, :, :, :, :16], torch.Generator())


def test_bad_task_settings_raise_config_error():
    with pytest.raises(ConfigError, match="cube"):
        tasks.RotationTask(crop=(32, 32, 16))
    with pytest.raises(ConfigError, match="keep_fraction"):
        tasks.CPCTask(keep_fraction=0.0)
    with pytest.raises(ConfigError, match="context_rows"):
        tasks.CPCTask(context_rows=0)
    with pytest.raises(ConfigError, match="n_permutations"):
        tasks.JigsawTask(n_permutations=1)


def test_cpc_gru_runs_in_float32_under_bf16_autocast():
    head = CPCHead(64, n_targets=2, width_divisor=8)
    codes = torch.randn(3, 10, head.code_size, dtype=torch.bfloat16, requires_grad=True)
    seen = []
    head.context.register_forward_hook(lambda m, args, out: seen.append(args[0].dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head.predict(codes)
    assert seen == [torch.float32]
    out.float().sum().backward()
    assert codes.grad is not None and torch.isfinite(codes.grad.float()).all()
