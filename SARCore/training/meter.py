"""Sample-weighted sums of a stage's scalar metrics, kept on the training device.

Adding a step's terms queues device additions and never waits for the GPU; the host
reads the sums only when asked (a progress line, a checkpoint, the end of an epoch), so
a CUDA step loop runs without a host synchronisation per step.
"""

from __future__ import annotations

import math

import torch

from SARCore.training.distributed import DistInfo, reduce_sums

COUNT = "_n"


class MeanMeter:
    """Running sums ``sum(value * batch size)`` per metric plus the sample count."""

    def __init__(self, device: torch.device | str = "cpu", state: dict[str, float] | None = None):
        self.device = torch.device(device)
        state = dict(state or {})
        self.count = float(state.pop(COUNT, 0.0))
        self.sums: dict[str, torch.Tensor] = {
            k: torch.tensor(float(v), dtype=torch.float64, device=self.device)
            for k, v in state.items()}

    def add(self, terms: dict[str, torch.Tensor], n: int) -> None:
        """Add one batch's terms (0-d tensors, weighted by its ``n`` samples)."""
        for key, value in terms.items():
            weighted = value.detach().to(torch.float64) * n
            total = self.sums.get(key)
            self.sums[key] = weighted if total is None else total + weighted
        self.count += n

    def mean(self, key: str) -> float:
        """This rank's running mean of ``key`` (reads the device: call it sparingly)."""
        total = self.sums.get(key)
        return math.nan if total is None else float(total) / max(self.count, 1.0)

    def state(self) -> dict[str, float]:
        """Plain numbers for a checkpoint (this rank's partial sums)."""
        return {**{k: float(v) for k, v in self.sums.items()}, COUNT: self.count}

    def means(self, info: DistInfo) -> dict[str, float]:
        """Means over all ranks' samples (each sample counted once)."""
        sums = reduce_sums({**self.sums, COUNT: self.count}, self.device, info)
        n = max(sums.pop(COUNT, 0.0), 1.0)
        return {k: v / n for k, v in sums.items()}
