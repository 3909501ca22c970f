"""Data loaders whose worker processes live for the whole run.

Re-creating a ``DataLoader`` for each pass (training, batch-norm recalibration,
validation) restarts its workers every epoch: seconds of process start-up and dataset
pickling per pass on a GPU that waits. One :class:`PassLoader` per dataset keeps its
workers (``persistent_workers``) and takes a different sampler for each pass.

Workers hold their own copies of the dataset, so ``set_epoch`` called in the main process
would not reach them: the sampler yields ``(epoch, index)`` and the workers' copy sets
its epoch itself before loading the item. Items must depend on (seed, epoch, index) only,
not on a worker's random state (the package's datasets do).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class _EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` pairs from whichever sampler the current pass set."""

    def __init__(self) -> None:
        self.inner: Iterable[int] = ()
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return ((epoch, int(index)) for index in self.inner)

    def __len__(self) -> int:
        return len(self.inner) if isinstance(self.inner, Sized) else 0


class _EpochDataset(Dataset):
    """Sets the wrapped dataset's epoch (in whichever process loads) before an item."""

    def __init__(self, dataset: Dataset):
        self.dataset, self.epoch = dataset, None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if epoch != self.epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)  # type: ignore[union-attr]
        self.epoch = epoch
        return self.dataset[index]


class PassLoader:
    """One dataset's loader for every pass of a run; workers start once."""

    def __init__(self, dataset: Dataset, batch_size: int, num_workers: int, pin_memory: bool,
                 drop_last: bool, seed: int):
        self.sampler = _EpochSampler()
        self.loader = DataLoader(
            _EpochDataset(dataset), batch_size=batch_size, sampler=self.sampler,
            num_workers=num_workers, pin_memory=pin_memory, drop_last=drop_last,
            persistent_workers=num_workers > 0,
            # an own generator: the workers' base seed must not consume the global torch
            # RNG, or a resumed run (whose first pass comes later) would diverge
            generator=torch.Generator().manual_seed(seed))

    def iterate(self, sampler: Iterable[int], epoch: int) -> Iterator[Any]:
        """Batches of ``sampler``'s indices, the dataset set to ``epoch``."""
        self.sampler.inner, self.sampler.epoch = sampler, epoch
        return iter(self.loader)
