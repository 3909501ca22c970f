"""Crash-safe checkpoints: atomic writes, safe loads, every RNG state captured.

Everything stored is a tensor, number, string, list, tuple or dict, so checkpoints load
with ``weights_only=True`` like model files.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from SARCore.atomic import torch_save_atomic
from SARCore.errors import CheckpointError
from SARCore.training.finite import check_state

CHECKPOINT_NAME = "last.ckpt"


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_as_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically; never a checkpoint whose model weights are NaN/Inf."""
    check_state(state.get("model", {}), "checkpoint")
    torch_save_atomic(state, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no checkpoint to resume from", path,
                              "start without --resume, or point --out at the earlier run")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickled code, ...: unusable either way
        raise CheckpointError(f"checkpoint is unreadable ({type(exc).__name__})", path) from exc
    if not isinstance(state, dict) or "model" not in state or "global_step" not in state:
        raise CheckpointError("not a SARCore checkpoint", path)
    return state
