"""One run per output folder, checked to be writable before any work starts.

:func:`claim_output_folder` makes the folder (refusing a path that names a file), proves
it writable with a probe file, and takes ``.sar-lock`` holding the run's PID and host.
A second run into the same folder is refused with the holder's PID; a lock left behind
by a killed run (its PID no longer alive on this host) is detected and taken over.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from SARCore.errors import LockError, WriteError

LOCK_NAME = ".sar-lock"


def check_writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove that files can be written in it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WriteError("output path is a file, not a folder", folder,
                         "choose a folder name for --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".tmp-{os.getpid()}-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        cause = (exc.strerror or str(exc)).lower()
        where = exc.filename if isinstance(exc, OSError) and exc.filename else folder
        hint = ("a parent of it is a file" if isinstance(exc, (NotADirectoryError,
                                                               FileExistsError))
                else "choose a folder you can write to")
        raise WriteError(f"output folder is not writable ({cause})", where, hint) from exc
    return folder


def _holder(lock: Path) -> tuple[int, str] | None:
    """``(pid, host)`` written in ``lock``, or ``None`` if unreadable."""
    try:
        pid_text, _, host = lock.read_text(encoding="utf-8").strip().partition(" ")
        return int(pid_text), host
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a killed process its parent has not reaped yet (a zombie,
    e.g. a torchrun worker just after SIGKILL) holds nothing any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): the signal test is all there is
    return state not in ("Z", "X")


def _take(lock: Path, me: str) -> bool:
    try:
        handle = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(me + "\n")
    return True


def acquire_lock(folder: Path) -> Path:
    """Take ``folder/.sar-lock`` or raise :class:`LockError` naming the live holder."""
    lock = folder / LOCK_NAME
    host = socket.gethostname()
    me = f"{os.getpid()} {host}"
    for _ in range(3):
        if _take(lock, me):
            return lock
        holder = _holder(lock)
        if holder is not None and (holder[1] != host or _alive(holder[0])):
            where = "" if holder[1] == host else f" on {holder[1]}"
            raise LockError(f"another run (PID {holder[0]}{where}) is writing to this folder",
                            folder, f"wait for it to finish, or choose another --out; if no "
                            f"run is active, delete {lock}")
        # Stale (the holder was killed) or half-written: move it aside, then retry.
        with contextlib.suppress(OSError):
            os.replace(lock, folder / f".tmp-{os.getpid()}-stale-lock")
            (folder / f".tmp-{os.getpid()}-stale-lock").unlink()
    raise LockError("could not take the folder's lock", lock, "delete it if no run is active")


@contextlib.contextmanager
def claim_output_folder(folder: str | Path) -> Iterator[Path]:
    """Writable ``folder`` held by this run alone for the duration of the block."""
    created = not Path(folder).exists()
    folder = check_writable_folder(folder)
    lock = acquire_lock(folder)
    try:
        yield folder
    finally:
        if _holder(lock) == (os.getpid(), socket.gethostname()):
            with contextlib.suppress(OSError):
                lock.unlink()
        if created:  # a run that failed before writing anything leaves no empty folder
            with contextlib.suppress(OSError):
                folder.rmdir()
