"""File names ITK can take: a non-UTF-8 byte in a name makes ITK abort the process.

On Linux a name may hold any bytes; Python keeps undecodable ones as surrogates, which
SimpleITK cannot convert and ITK answers by aborting (exit 134), killing a whole batch.
So names are checked here first and refused with a :class:`DataError`, one case at a time.
"""

from __future__ import annotations

import os
from pathlib import Path

from SARCore.errors import DataError


def printable(path: str | Path) -> str:
    """``path`` with undecodable bytes shown as ``\\xNN`` (safe to print and to JSON)."""
    return os.fsencode(str(path)).decode("utf-8", errors="backslashreplace")


def check_itk_path(path: str | Path) -> None:
    """Raise :class:`DataError` if ITK could not take ``path``'s name."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError("file name is not valid UTF-8", printable(path),
                        "rename the file or folder using plain characters") from exc
