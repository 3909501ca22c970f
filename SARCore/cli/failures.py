"""Expected failures outside :class:`SARError` -> one clear sentence, never a traceback.

The disk fills up, a folder is read-only, an output path names a file, memory runs out:
a user can cause and fix each of these, so each gets a line that names the file and
the cause (the traceback is logged at DEBUG level only). Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import errno
import logging
import os

log = logging.getLogger("SARCore.cli")

_OS_HINTS = {
    errno.ENOSPC: "free disk space or choose another output folder",
    errno.EDQUOT: "free disk space or choose another output folder",
    errno.EFBIG: "the file-size limit was reached; choose another output folder",
    errno.EACCES: "check the permissions of the file or folder",
    errno.EPERM: "check the permissions of the file or folder",
    errno.EROFS: "the file system is read-only; choose another output folder",
    errno.ENOTDIR: "a path names a file where a folder is needed",
    errno.EEXIST: "a path names a file where a folder is needed",
    errno.EISDIR: "a path names a folder where a file is needed",
    errno.ENOENT: "check the path",
}


def _printable(path: object) -> str:
    return os.fsencode(str(path)).decode("utf-8", errors="backslashreplace")


def describe(exc: BaseException) -> tuple[str, str, str | None] | None:
    """``(kind, message, file)`` for an expected failure, ``None`` for a bug."""
    if isinstance(exc, MemoryError):
        return ("MemoryError", "out of memory (try a coarser --spacing, a smaller --window "
                "or --batch-size, or fewer cases at once)", None)
    if isinstance(exc, OSError) and exc.errno in _OS_HINTS:
        name = exc.filename if exc.filename is not None else None
        cause = (exc.strerror or str(exc)).lower()
        text = f"{_printable(name)}: {cause}" if name is not None else cause
        return (type(exc).__name__, f"{text} ({_OS_HINTS[exc.errno]})",
                _printable(name) if name is not None else None)
    return None


def log_traceback(exc: BaseException) -> None:
    """The full traceback, for ``--log-level DEBUG``."""
    log.debug("traceback of the failure above", exc_info=exc)
