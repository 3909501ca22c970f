"""``torchrun --nproc_per_node=2 -m SARCore finetune`` (gloo, CPU): rank 0 alone prepares
and writes the output folder, and 2 ranks x 1 patch train the model 1 process x 2 patches
trains (Dice sums pooled over the ranks, batch norm synchronised)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from finetune_data import coarse_config
from pretrain_data import one_torch_thread, subprocess_env

from SARCore.config import to_dict
from SARCore.finetune import finetune
from SARCore.training.checkpoint import load_checkpoint
from SARCore.training.metrics_log import read_metrics_csv


def test_two_ranks_finetune_like_one_process(data_dir: Path, brats_cache_dir: Path,
                                             tmp_path: Path, capsys):
    settings = {**to_dict(coarse_config(data_dir, cache_dir=str(brats_cache_dir), seed=2,
                                        val_patches_per_case=3, batch_size=1))}
    config_file = tmp_path / "finetune.json"
    config_file.write_text(json.dumps(settings))
    ddp_out, single_out = tmp_path / "ddp", tmp_path / "single"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "SARCore", "finetune", "--config", str(config_file),
               "--out", str(ddp_out), "--progress", "json"]
    done = subprocess.run(command, capture_output=True, text=True, env=subprocess_env(),
                          timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    steps = [e["step"] for e in events
             if e["event"] == "progress" and e.get("stage", "").startswith("finetune")
             and not e["stage"].endswith("validation")]
    assert steps == [0, 1, 2, 3, 4]  # rank 0 only, from 0 %
    assert sum(e["event"] == "done" for e in events) == 1
    assert "Grad strides do not match" not in done.stderr  # channels-last 1x1x1 kernels
    assert not list(ddp_out.rglob(".tmp-*"))
    assert json.loads((ddp_out / "finetune_result.json").read_text())["selected_split"]

    with one_torch_thread():
        finetune(coarse_config(data_dir, cache_dir=str(brats_cache_dir), seed=2,
                               val_patches_per_case=3, batch_size=2), single_out)
    capsys.readouterr()
    ddp_state, single_state = (load_checkpoint(p / "trial_0" / "last.ckpt")
                               for p in (ddp_out, single_out))
    assert ddp_state["world_size"] == 2 and ddp_state["global_step"] == 4
    assert len(ddp_state["ranks"]) == 2
    # Adam scales each element's step by its own gradient size, so float-rounding noise
    # in near-zero gradients becomes +-lr steps: the weights are compared through the
    # losses they give on the same global batches (a rank-local Dice differs by ~5e-3).
    ddp_rows, single_rows = (read_metrics_csv(p / "trial_0" / "metrics.csv")
                             for p in (ddp_out, single_out))
    assert len(ddp_rows) == len(single_rows) == 2
    for ddp_row, single_row in zip(ddp_rows, single_rows):
        assert ddp_row["train_loss"] == pytest.approx(single_row["train_loss"], rel=1e-4)
        # thresholded at 0: a voxel whose logit rounds across 0 moves the hard Dice
        assert ddp_row["train_dice"] == pytest.approx(single_row["train_dice"], rel=1e-3)


def test_second_ddp_start_is_refused_by_rank_0_only(data_dir: Path, brats_cache_dir: Path,
                                                    tmp_path: Path):
    """A folder that holds a run: rank 0 refuses with the usual message, rank 1 stops
    too (naming process 0) instead of waiting forever."""
    out = tmp_path / "taken"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"config": {}}))
    config_file = tmp_path / "finetune.json"
    config_file.write_text(json.dumps(to_dict(coarse_config(
        data_dir, cache_dir=str(brats_cache_dir)))))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "SARCore", "finetune", "--config", str(config_file),
               "--out", str(out), "--progress", "json"]
    done = subprocess.run(command, capture_output=True, text=True, env=subprocess_env(),
                          timeout=300)
    assert done.returncode != 0
    errors = [json.loads(line) for line in done.stdout.splitlines()
              if line.startswith("{") and '"error"' in line]
    messages = " | ".join(e["message"] for e in errors)
    assert "already holds a fine-tuning run" in messages
    assert "process 0 failed while preparing" in messages
