"""Crash safety: SIGKILL a CLI pre-training run mid-epoch, resume it, and get exactly the
weights and metrics of a run that was never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from pretrain_data import one_torch_thread, subprocess_env

from SARCore.cli import main
from SARCore.models.modelfile import load_model_file
from SARCore.training.checkpoint import load_checkpoint
from SARCore.training.metrics_log import read_metrics_csv

KILL_AFTER_STEP = 5  # the checkpoint of step 4 (mid-epoch 2) exists by then


def pretrain_args(cubes: Path, out: Path) -> list[str]:
    """SAR (every loss, random corruptions) for 2 epochs of 3 steps, checkpoint every 2."""
    return ["pretrain", str(cubes), "--out", str(out), "--method", "sar", "--width-divisor",
            "8", "--batch-size", "2", "--steps-per-epoch", "3", "--max-steps", "6",
            "--checkpoint-every", "2", "--seed", "3", "--device", "cpu", "--progress", "json"]


def run_until_killed(args: list[str], step: int, timeout: float = 240.0) -> list[dict]:
    """Run the CLI in a subprocess and SIGKILL it once it reports ``step``."""
    process = subprocess.Popen([sys.executable, "-m", "SARCore", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=subprocess_env())
    events, deadline = [], time.monotonic() + timeout
    try:
        for line in process.stdout:
            events.append(json.loads(line))
            if events[-1].get("event") == "progress" and events[-1]["step"] >= step:
                process.send_signal(signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                break
    finally:
        process.kill()
        stderr = process.communicate()[1]
    assert process.returncode == -signal.SIGKILL, (process.returncode, stderr[-2000:])
    return events


def check_files_intact(out: Path) -> None:
    """Every file under a final name loads; only ``.tmp-*`` names may be partial."""
    load_checkpoint(out / "last.ckpt")
    load_model_file(out / "model.sarmodel")
    json.loads((out / "config.json").read_text())
    assert read_metrics_csv(out / "metrics.csv")
    names = {p.name for p in out.iterdir() if not p.name.startswith(".tmp-")}
    assert names <= {"last.ckpt", "model.sarmodel", "config.json", "metrics.csv",
                     "loss_curves.png", ".sar-lock"}, names  # a killed run's lock: stale


def run_in_process(args: list[str], capsys: pytest.CaptureFixture) -> list[dict]:
    with one_torch_thread():
        assert main(args) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()
            if line.startswith("{")]


def test_sigkill_then_resume_matches_an_uninterrupted_run(small_real_cubes_dir, tmp_path,
                                                          capsys):
    killed = tmp_path / "killed"
    events = run_until_killed(pretrain_args(small_real_cubes_dir, killed), KILL_AFTER_STEP)
    assert [e["step"] for e in events if e["event"] == "progress"][-1] >= KILL_AFTER_STEP
    check_files_intact(killed)
    saved = load_checkpoint(killed / "last.ckpt")
    assert saved["global_step"] == 4 and saved["batch_in_epoch"] == 1  # mid-epoch 2

    resumed = run_in_process(pretrain_args(small_real_cubes_dir, killed) + ["--resume"], capsys)
    steps = [e["step"] for e in resumed if e["event"] == "progress"]
    assert steps[0] == saved["global_step"] + 1 and steps[-1] == 6
    check_files_intact(killed)

    straight = tmp_path / "straight"
    run_in_process(pretrain_args(small_real_cubes_dir, straight), capsys)
    after_resume = load_checkpoint(killed / "last.ckpt")
    reference = load_checkpoint(straight / "last.ckpt")
    assert after_resume["global_step"] == reference["global_step"] == 6
    for name, tensor in reference["model"].items():
        assert torch.equal(after_resume["model"][name], tensor), name
    momentum = [s["momentum_buffer"] for s in reference["optimizer"]["state"].values()]
    resumed_momentum = [s["momentum_buffer"]
                        for s in after_resume["optimizer"]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(resumed_momentum, momentum))
    strip = [{k: v for k, v in row.items() if k != "seconds"}
             for row in read_metrics_csv(straight / "metrics.csv")]
    assert [{k: v for k, v in row.items() if k != "seconds"}
            for row in read_metrics_csv(killed / "metrics.csv")] == strip
    assert len(strip) == 2


def test_fresh_run_refuses_a_folder_with_a_checkpoint(small_real_cubes_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"model": {}, "global_step": 0}, out / "last.ckpt")
    with one_torch_thread():
        code = main(pretrain_args(small_real_cubes_dir, out))
    assert code == 2
    error = [json.loads(line) for line in capsys.readouterr().out.splitlines()][-1]
    assert error["event"] == "error" and "--resume" in error["message"]
