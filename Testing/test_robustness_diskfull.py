"""Disk full during a real training run: ``sar pretrain`` on real cubes, in a process whose
files may not grow past a byte limit (``RLIMIT_FSIZE``: the write comes up short, as on a
full disk or a quota), resumed afterwards.

The failed write must end the run with exit code 1 and one sentence naming the file, leave
the last good checkpoint byte for byte and no partial file, and ``--resume`` must go on
from that checkpoint to exactly the weights of a run that never failed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from pretrain_data import subprocess_env
from robustness_faults import assert_no_traceback, errors, sar
from test_pretrain_resume import pretrain_args, run_until_killed

from SARCore.training.checkpoint import load_checkpoint

GOOD_STEP = 2  # --checkpoint-every 2: last.ckpt of step 2 exists when step 2 is reported
ONE_THREAD = {k: v for k, v in subprocess_env().items() if k.endswith("_NUM_THREADS")}


@pytest.fixture(scope="module")
def stopped_run(small_real_cubes_dir: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Path:
    """A run stopped (SIGKILL) just after its step-2 checkpoint, before epoch 1 ends."""
    out = tmp_path_factory.mktemp("diskfull") / "run"
    run_until_killed(pretrain_args(small_real_cubes_dir, out), GOOD_STEP)
    assert load_checkpoint(out / "last.ckpt")["global_step"] == GOOD_STEP
    assert not (out / "model.sarmodel").exists()
    return out


@pytest.fixture(scope="module")
def reference_weights(small_real_cubes_dir: Path, tmp_path_factory: pytest.TempPathFactory
                      ) -> dict[str, torch.Tensor]:
    """The weights of the same run without any fault, at its last step."""
    out = tmp_path_factory.mktemp("diskfull") / "straight"
    code, _, stderr = sar(*pretrain_args(small_real_cubes_dir, out), extra_env=ONE_THREAD)
    assert code == 0, stderr[-2000:]
    reference = load_checkpoint(out / "last.ckpt")
    assert reference["global_step"] == 6
    return reference["model"]


@pytest.mark.parametrize("target", ["last.ckpt", "model.sarmodel"])
def test_short_write_during_training_keeps_the_checkpoint_and_resumes(
        target: str, stopped_run: Path, reference_weights: dict[str, torch.Tensor],
        small_real_cubes_dir: Path, tmp_path: Path) -> None:
    out = Path(shutil.copytree(stopped_run, tmp_path / "run"))
    good = (out / "last.ckpt").read_bytes()
    # The first write of epoch 1's end that does not fit: the best model (about half a
    # checkpoint: no optimizer state) under a tight limit, the checkpoint under a limit
    # just below its own size (the model file fits).
    limit = 100_000 if target == "model.sarmodel" else len(good) - 1
    args = [*pretrain_args(small_real_cubes_dir, out), "--resume"]
    code, events, stderr = sar(*args, max_bytes=limit, extra_env=ONE_THREAD)

    assert code == 1, stderr[-2000:]
    assert_no_traceback(stderr)
    [message] = errors(events)
    assert str(out / target) in message and "disk" in message, message
    failed = next(e for e in events if e["event"] == "error")
    assert failed["exit_code"] == 1 and failed["file"] == str(out / target)
    assert (out / "last.ckpt").read_bytes() == good  # the last good checkpoint, untouched
    assert not list(out.glob(".tmp-*"))  # no partial file left behind
    if target == "model.sarmodel":
        assert not (out / target).exists()
    assert not (out / ".sar-lock").exists()

    code, events, stderr = sar(*args, extra_env=ONE_THREAD)  # space again: resume
    assert code == 0, stderr[-2000:]
    steps = [e["step"] for e in events if e["event"] == "progress" and e["stage"] == "pretrain"]
    assert steps[0] == GOOD_STEP + 1 and steps[-1] == 6

    resumed = load_checkpoint(out / "last.ckpt")
    assert resumed["global_step"] == 6
    for name, tensor in reference_weights.items():  # as if the disk had never filled
        assert torch.equal(resumed["model"][name], tensor), name
