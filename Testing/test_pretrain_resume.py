"""Crash safety: SIGKILL a CLI pre-training run mid-epoch, resume it, and get exactly the
weights and metrics of a run that was never interrupted."""

from __future__ import annotations

import contextlib
import json
import os
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
    """SAR (every loss, random corruptions) for 2 epochs of 3 steps, checkpoint every 2
    (the only "6" is --max-steps)."""
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
            if (events[-1].get("event") == "progress" and events[-1].get("stage") == "pretrain"
                    and events[-1]["step"] >= step):  # training steps, not validation's
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
    assert [e["step"] for e in events
            if e["event"] == "progress" and e.get("stage") == "pretrain"][-1] >= KILL_AFTER_STEP
    check_files_intact(killed)
    saved = load_checkpoint(killed / "last.ckpt")
    assert saved["global_step"] == 4 and saved["batch_in_epoch"] == 1  # mid-epoch 2

    resumed = run_in_process(pretrain_args(small_real_cubes_dir, killed) + ["--resume"], capsys)
    steps = [e["step"] for e in resumed if e["event"] == "progress" and e["stage"] == "pretrain"]
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


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc): torchrun starts its workers in their own
    sessions, so killing its process group would leave them running."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def kill_at_first_checkpoint(args: list[str], checkpoint: Path, launcher: tuple[str, ...],
                             timeout: float = 240.0) -> None:
    """SIGKILL the run (all its processes) as soon as ``checkpoint`` appears: torchrun's
    relayed stdout comes too late to stop it at a given step."""
    process = subprocess.Popen([sys.executable, "-m", *launcher, "-m", "SARCore", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=subprocess_env())
    deadline = time.monotonic() + timeout
    try:
        while not checkpoint.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        for pid in [*descendants(process.pid), process.pid]:  # torchrun's workers first
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stderr = process.communicate()[1]
    assert process.returncode == -signal.SIGKILL, (process.returncode, stderr[-2000:])


TORCHRUN = ("torch.distributed.run", "--standalone", "--nproc_per_node=2")


def run_torchrun(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", *TORCHRUN, "-m", "SARCore", *args],
                          capture_output=True, text=True, env=subprocess_env(), timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_rank_sigkill_then_resume_matches_per_rank(small_real_cubes_dir, tmp_path):
    """2 gloo ranks, random corruptions: after a SIGKILL and --resume each rank continues
    its own corruption stream and part-epoch sums, so weights, metrics and every rank's
    generator equal an uninterrupted 2-rank run's."""
    def args(out: Path) -> list[str]:
        return [arg if arg != "6" else "4" for arg in pretrain_args(small_real_cubes_dir, out)]

    killed, straight = tmp_path / "killed", tmp_path / "straight"
    kill_at_first_checkpoint(args(killed), killed / "last.ckpt", TORCHRUN)
    saved = load_checkpoint(killed / "last.ckpt")
    assert saved["global_step"] == 2 and saved["batch_in_epoch"] == 2  # mid-epoch 1
    assert len(saved["ranks"]) == 2
    run_torchrun(args(killed) + ["--resume"])
    run_torchrun(args(straight))
    after_resume, reference = (load_checkpoint(p / "last.ckpt") for p in (killed, straight))
    assert after_resume["global_step"] == reference["global_step"] == 4
    for name, tensor in reference["model"].items():
        assert torch.equal(after_resume["model"][name], tensor), name
    for rank in (0, 1):
        assert torch.equal(after_resume["ranks"][rank]["rng"]["generator"],
                           reference["ranks"][rank]["rng"]["generator"]), rank
        assert after_resume["ranks"][rank]["meter"] == reference["ranks"][rank]["meter"]
    assert not torch.equal(reference["ranks"][0]["rng"]["generator"],
                           reference["ranks"][1]["rng"]["generator"])
    strip = [{k: v for k, v in row.items() if k != "seconds"}
             for row in read_metrics_csv(straight / "metrics.csv")]
    assert [{k: v for k, v in row.items() if k != "seconds"}
            for row in read_metrics_csv(killed / "metrics.csv")] == strip
