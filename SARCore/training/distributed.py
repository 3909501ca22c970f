"""DistributedDataParallel set-up from torchrun's environment (RANK, WORLD_SIZE, ...).

One process per device; gloo on CPU, NCCL on CUDA. Without torchrun's variables
everything degrades to a single process and these helpers are no-ops.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from SARCore.errors import SARError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes; returns this rank's info and device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info, device


def reduce_sums(values: dict[str, Any], device: torch.device, info: DistInfo) -> dict[str, float]:
    """Sum each value (a float or a 0-d tensor) over ranks; callers divide by a summed
    count for means. A key some rank lacks (no batch there) counts as 0 on that rank."""
    if not info.enabled:
        return {k: float(v) for k, v in values.items()}
    keys = sorted(set().union(*gather_objects(sorted(values), info)))
    if not keys:
        return {}
    tensor = torch.stack([torch.as_tensor(values.get(k, 0.0), dtype=torch.float64,
                                          device=device).reshape(()) for k in keys])
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return dict(zip(keys, tensor.tolist()))


def broadcast_flag(flag: bool, device: torch.device, info: DistInfo) -> bool:
    """Rank 0's decision (e.g. early stop) for every rank."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def group_active() -> bool:
    """Whether a process group is already set up (by an enclosing :func:`process_group`)."""
    return dist.is_available() and dist.is_initialized()


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[tuple[DistInfo, torch.device]]:
    """Join torchrun's group for the whole of one command (preparation, every training
    run, final writes) and leave it at the end; nested uses share the outer group."""
    created = not group_active()
    info, device = init_distributed(device)
    try:
        yield info, device
        if created:  # no rank may tear down while a peer still sends (gloo aborts then)
            barrier(info)
    finally:
        if created:
            cleanup(info)


def barrier(info: DistInfo) -> None:
    """Every rank waits here until all have arrived (no-op in a single process)."""
    if info.enabled:
        dist.barrier()


def on_main(info: DistInfo, work: Callable[[], T], what: str) -> T:
    """Run ``work`` on rank 0 only while the others wait, then give every rank its result.

    Output-folder checks and writes belong here: run on every rank they race (one rank
    finds the file another just wrote; one rank's temporary-file cleanup deletes another's
    file). A failure on rank 0 is raised there and, as a short :class:`SARError` naming
    ``what``, on the other ranks, so no rank is left waiting at the next collective.
    ``work``'s result must pickle.
    """
    if not info.enabled:
        return work()
    result: Any = None
    failure: BaseException | None = None
    if info.is_main:
        try:
            result = work()
        except BaseException as exc:  # shared with the other ranks, then re-raised
            failure = exc
    payload: list[Any] = [None if failure is None else str(failure), result]
    dist.broadcast_object_list(payload, src=0)
    if failure is not None:
        raise failure
    if payload[0] is not None:
        raise SARError(f"process 0 failed while {what}: {payload[0]}")
    return payload[1]


def gather_objects(value: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``value`` (a picklable object), indexed by rank, on every rank."""
    if not info.enabled:
        return [value]
    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, value)
    return gathered
