"""Atomic file output: write to a temporary sibling, fsync, then rename.

A crash or a kill at any moment leaves either the old file or the new one,
never a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _temp_sibling(path: Path) -> Path:
    # Keep the real suffix last so writers that infer the format from it
    # (SimpleITK, matplotlib, numpy) still work on the temporary name.
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def torch_save_atomic(obj: Any, path: str | Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete ``.tmp-*`` leftovers of killed writers; returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(".tmp-*"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed
