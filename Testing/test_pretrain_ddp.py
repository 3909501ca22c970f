"""DDP: ``torchrun --nproc_per_node=2 -m SARCore pretrain`` (gloo, CPU) keeps both ranks'
weights identical and trains like one process on the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pretrain_data import one_torch_thread, subprocess_env

from SARCore.cli import main
from SARCore.models.modelfile import weights_digest
from SARCore.training.checkpoint import load_checkpoint
from SARCore.training.metrics_log import read_metrics_csv

#: Genesis without corruptions: each rank's batch is then exactly its share of the global
#: batch (random corruptions would differ per rank), so 2 x 2 must equal 1 x 4.
IDENTICAL_DATA = {"method": "genesis", "width_divisor": 8, "max_steps": 3,
                  "steps_per_epoch": 3, "seed": 5, "device": "cpu",
                  "corruption": {"flip_prob": 0.0, "shuffle_prob": 0.0,
                                 "nonlinear_prob": 0.0, "paint_prob": 0.0}}


def write_config(path: Path) -> Path:
    path.write_text(json.dumps(IDENTICAL_DATA))
    return path


def test_two_gloo_ranks_match_one_process(small_real_cubes_dir, tmp_path, capsys):
    config = write_config(tmp_path / "identical.json")
    ddp_out, single_out = tmp_path / "ddp", tmp_path / "single"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "SARCore", "pretrain", str(small_real_cubes_dir),
               "--out", str(ddp_out), "--config", str(config), "--batch-size", "2",
               "--rank-digests", "--progress", "json"]
    done = subprocess.run(command, capture_output=True, text=True, env=subprocess_env(),
                          timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [e["step"] for e in events  # rank 0 only, from 0 %
            if e["event"] == "progress" and e.get("stage") == "pretrain"] == [0, 1, 2, 3]
    assert sum(e["event"] == "done" for e in events) == 1

    digests = [json.loads((ddp_out / "rank_digests" / f"rank{r}.json").read_text())
               for r in (0, 1)]
    assert [d["world_size"] for d in digests] == [2, 2]
    assert digests[0]["weights_sha256"] == digests[1]["weights_sha256"]
    ddp_state = load_checkpoint(ddp_out / "last.ckpt")
    assert ddp_state["world_size"] == 2 and ddp_state["global_step"] == 3
    assert weights_digest(ddp_state["model"]) == digests[0]["weights_sha256"]

    with one_torch_thread():
        assert main(["pretrain", str(small_real_cubes_dir), "--out", str(single_out),
                     "--config", str(config), "--batch-size", "4", "--progress", "none"]) == 0
    capsys.readouterr()
    single_state = load_checkpoint(single_out / "last.ckpt")
    for name, tensor in single_state["model"].items():
        if not tensor.is_floating_point():
            continue
        # Batch-norm statistics are re-estimated through the trained layers before
        # validation (full batch statistics, not 0.1 of them), so the weights' float
        # rounding differences reach them a little amplified (seen: 1.3e-3 on one channel
        # of a near-zero mean, with every weight within 2e-4).
        stats = name.endswith(("running_mean", "running_var"))
        torch.testing.assert_close(ddp_state["model"][name], tensor, rtol=5e-3 if stats else 1e-3,
                                   atol=2e-3 if stats else 2e-4,
                                   msg=lambda text, name=name: f"{name}: {text}")
    ddp_rows, single_rows = (read_metrics_csv(p / "metrics.csv") for p in (ddp_out, single_out))
    assert ddp_rows[-1]["train_loss"] == pytest.approx(single_rows[-1]["train_loss"], rel=1e-3)
    # Validation runs through those re-estimated statistics: a little more slack.
    assert ddp_rows[-1]["val_loss"] == pytest.approx(single_rows[-1]["val_loss"], rel=3e-3)


#: Graph operations that only the corruption draws or uses: none may be compiled.
CORRUPTION_OPS = ("rand", "uniform", "randint", "scatter_reduce", "argsort", "bucketize")


def test_compile_trains_with_corruptions_outside_the_graph(small_real_cubes_dir, tmp_path,
                                                           monkeypatch, capsys):
    """``--compile`` on SAR really compiles the networks and leaves the corruption eager.

    ``SAR_COMPILE_BACKEND`` names a backend registered here that records every graph
    Dynamo hands it and runs it eagerly (inductor's C++ build takes minutes on 2 cores):
    without compilation no graph arrives, and a corruption traced into the graph would
    show its random draws and scatters among the graph's operations."""
    from torch import _dynamo

    graphs: list[torch.fx.GraphModule] = []

    def recording_backend(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        graphs.append(gm)
        return gm.forward

    _dynamo.reset()
    _dynamo.register_backend(recording_backend, name="sar_test_recording")
    monkeypatch.setenv("SAR_COMPILE_BACKEND", "sar_test_recording")
    out = tmp_path / "compiled"
    try:
        with one_torch_thread():
            assert main(["pretrain", str(small_real_cubes_dir), "--out", str(out),
                         "--method", "sar", "--width-divisor", "8", "--batch-size", "2",
                         "--max-steps", "2", "--steps-per-epoch", "2", "--device", "cpu",
                         "--compile", "--progress", "none"]) == 0
    finally:
        _dynamo.reset()
    capsys.readouterr()
    targets = [str(getattr(node.target, "__name__", node.target)) for gm in graphs
               for node in gm.graph.nodes if node.op in ("call_function", "call_method",
                                                         "call_module")]
    assert graphs, "Dynamo compiled nothing"
    assert any("conv" in t for t in targets), targets  # the U-Net is inside a graph
    assert not [t for t in targets if any(op in t.lower() for op in CORRUPTION_OPS)], targets
    state = load_checkpoint(out / "last.ckpt")
    assert state["global_step"] == 2 and state["config"]["compile"] is True
    assert all(not k.startswith("_orig_mod") for k in state["model"])  # plain names
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
