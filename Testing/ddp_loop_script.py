"""Run under ``torchrun --nproc_per_node=2`` by test_training_ddp.py: the real training
loop on a toy objective whose validation loss is the mean of the item values, so the
exact answer (each item counted once) is known. Writes ``OUT/rank<r>.json``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from SARCore.training.checkpoint import load_checkpoint
from SARCore.training.loop import LoopConfig, train


class Items(Dataset):
    """Item ``i`` is ``{"x": i}`` as a 1-element float tensor."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": torch.tensor([float(index)])}


class MeanOfItems(nn.Module):
    """Loss = mean item value (the weight only gives the optimizer a parameter)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator
                ) -> dict[str, torch.Tensor]:
        noise = torch.rand(1, generator=generator)  # draws from this rank's stream
        return {"loss": batch["x"].mean() + 0.0 * (self.weight * noise).sum()}


def main(out: Path, n_val: int) -> None:
    config = LoopConfig(epochs=1, batch_size=2, device="cpu", seed=4, bn_recalibration=0)
    result = train(MeanOfItems(), lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
                   Items(4), Items(n_val), out, config)
    state = load_checkpoint(out / "last.ckpt")
    rank = int(os.environ.get("RANK", "0"))
    (out / f"rank{rank}.json").write_text(json.dumps({
        "val_loss": result.history[-1]["val_loss"],
        "generators": [r["rng"]["generator"].tolist() for r in state["ranks"]]}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
