"""Atomic, verified file output: write a temporary sibling, check it, fsync, rename.

A crash or a kill at any moment leaves either the old file or the new one, never a
half-written file under the final name. Some writers (ITK's, through SimpleITK) do not
raise when the disk fills up or a file-size limit cuts a write short, so every file is
checked before the rename: it must exist and be non-empty, and a ``verify`` callback
(re-reading it, or comparing its size with the bytes handed over) may look deeper. A
failure is a :class:`~SARCore.errors.WriteError` naming the final file and the cause;
nothing appears under the final name and the old file, if any, is kept.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from SARCore.errors import SARError, WriteError

#: A check of a freshly written temporary file; raises (any exception) when it is bad.
Verifier = Callable[[Path], None]


def _temp_sibling(path: Path) -> Path:
    # Keep the real suffix last so writers that infer the format from it
    # (SimpleITK, matplotlib, numpy) still work on the temporary name.
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, SARError):
        return exc.problem
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every system allows it)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def check_written(tmp: Path, final: Path, verify: Verifier | None = None) -> None:
    """Raise :class:`WriteError` (naming ``final``) unless ``tmp`` is a complete file."""
    if not tmp.is_file():
        raise WriteError("nothing was written", final, "check free disk space and permissions")
    if tmp.stat().st_size == 0:
        raise WriteError("the written file is empty (disk full or a file-size limit?)",
                         final, "free disk space or choose another output folder")
    if verify is not None:
        try:
            verify(tmp)
        except Exception as exc:  # any failure to re-read means the bytes are not what we wrote
            raise WriteError(f"the written file is incomplete or unreadable ({_cause(exc)}); "
                             "the disk may be full or a file-size limit reached", final,
                             "free disk space or choose another output folder") from exc


@contextlib.contextmanager
def atomic_path(path: str | Path, verify: Verifier | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` only if the block succeeds
    and the file written passes :func:`check_written` (with ``verify``)."""
    final = Path(path)
    tmp = _temp_sibling(final)
    try:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            check_written(tmp, final, verify)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except OSError as exc:  # disk full, file too large, read-only, permission denied
            raise WriteError(f"cannot write: {_cause(exc)}", final,
                             "free disk space or choose another output folder") from exc
        _fsync_folder(final.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def size_is(expected: int) -> Verifier:
    """A verifier: the file holds exactly ``expected`` bytes."""
    def verify(tmp: Path) -> None:
        size = tmp.stat().st_size
        if size != expected:
            raise OSError(0, f"{size} of {expected} bytes on disk")
    return verify


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` and check that every byte reached the file."""
    with atomic_path(path, verify=size_is(len(data))) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def torch_save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` through memory, so the size on disk can be checked against it."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete ``.tmp-*`` leftovers of killed writers; returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(".tmp-*"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed
