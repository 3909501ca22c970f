"""A distributed sampler that can start mid-epoch, so a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, DistributedSampler, Sampler


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` (seeded shuffle per epoch, one shard per rank) plus
    :meth:`set_start`, which skips the first ``start`` samples of this rank's shard."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int,
                 shuffle: bool = True, drop_last: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=drop_last)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = max(0, int(start))

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


class ShardSampler(Sampler[int]):
    """Items ``rank, rank + world, ...`` in order: every item exactly once over all ranks.

    For evaluation passes (validation): ``DistributedSampler`` pads the ranks to equal
    length by repeating items, which would count those items twice in a mean. Ranks may
    get one item fewer; the means are weighted by each rank's sample count.
    """

    def __init__(self, size: int, num_replicas: int, rank: int):
        self.size, self.num_replicas, self.rank = int(size), int(num_replicas), int(rank)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.num_replicas))
