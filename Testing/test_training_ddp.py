"""The training loop under ``torchrun --nproc_per_node=2`` (gloo, CPU) on a toy objective:
validation counts every item exactly once, and the checkpoint keeps each rank's own
random stream; loaders keep their workers across passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pretrain_data import subprocess_env
from torch.utils.data import Dataset

from SARCore.training.loaders import PassLoader
from SARCore.training.sampler import ShardSampler

SCRIPT = Path(__file__).with_name("ddp_loop_script.py")


def torchrun(*args: str) -> list[str]:
    """The command that starts ``args`` (a module or script) on 2 local gloo processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node=2", *args]


@pytest.mark.parametrize("size,world", [(5, 2), (3, 4), (8, 3), (0, 2)])
def test_shard_sampler_gives_every_item_once(size, world):
    shards = [list(ShardSampler(size, world, rank)) for rank in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(size))
    assert [len(ShardSampler(size, world, r)) for r in range(world)] == [len(s) for s in shards]


def test_two_ranks_validate_each_item_once_and_keep_own_generators(tmp_path):
    # 5 validation items: a padding sampler gives rank 1 item 0 again (and a dropped last
    # batch loses items), so only an exact shard yields the true mean 2.0. Rank 1 gets one
    # item, i.e. fewer batches than rank 0, which must not stall the reduction.
    done = subprocess.run(torchrun(str(SCRIPT), str(tmp_path), "5"), capture_output=True,
                          text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["val_loss"] for r in ranks] == [2.0, 2.0]
    generators = ranks[0]["generators"]
    assert len(generators) == 2 and generators[0] != generators[1]
    assert ranks[1]["generators"] == generators


class EpochItems(Dataset):
    """Item ``i`` reports the epoch its copy of the dataset was set to and its process."""

    def __init__(self) -> None:
        self.epoch = -1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"epoch": torch.tensor(self.epoch), "index": torch.tensor(index),
                "pid": torch.tensor(os.getpid())}


def test_pass_loader_keeps_its_worker_and_tells_it_the_epoch():
    loader = PassLoader(EpochItems(), batch_size=2, num_workers=1, pin_memory=False,
                        drop_last=False, seed=0)
    passes = [list(loader.iterate(sampler, epoch))
              for sampler, epoch in (([0, 1, 2], 0), ([3], 1), ([1, 0], 5))]
    assert [[int(i) for b in p for i in b["index"]] for p in passes] == [[0, 1, 2], [3], [1, 0]]
    assert [{int(e) for b in p for e in b["epoch"]} for p in passes] == [{0}, {1}, {5}]
    pids = {int(pid) for p in passes for b in p for pid in b["pid"]}
    assert len(pids) == 1 and os.getpid() not in pids  # one worker, never restarted
