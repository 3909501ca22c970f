"""File names ITK can take: a non-UTF-8 byte in a name makes ITK abort the process.

On Linux a name may hold any bytes; Python keeps undecodable ones as surrogates, which
SimpleITK cannot convert and ITK answers by aborting (exit 134), killing a whole batch.
So names are checked here first and refused with a :class:`DataError`, one case at a time.

Paths read from a file (a ``dataset.json``, a preprocessing manifest, a cube store's
index) stay inside that file's folder: :func:`inside_folder` is the one rule every verb
applies, so a downloaded or hand-edited description cannot reach other files. Only a
``dataset.json``, which people write, may opt out (``--allow-outside-paths``).
"""

from __future__ import annotations

import os
from pathlib import Path

from SARCore.errors import DataError


def printable(path: str | Path) -> str:
    """``path`` with undecodable bytes shown as ``\\xNN`` (safe to print and to JSON)."""
    return os.fsencode(str(path)).decode("utf-8", errors="backslashreplace")


def inside_folder(root: Path, name: str, listed_in: Path, allow_outside: bool = False,
                  hint: str = "keep the files inside that folder") -> Path:
    """``root / name``, or a :class:`DataError` naming ``listed_in`` when ``name`` leaves
    ``root`` (an absolute path, or more ``..`` than folders) unless ``allow_outside``."""
    parts = Path(os.path.normpath(name)).parts
    if not allow_outside and (Path(name).is_absolute() or (parts and parts[0] == "..")):
        raise DataError(f"entry {name!r} points outside the folder of {listed_in.name}",
                        listed_in, hint)
    return root / name


def check_itk_path(path: str | Path) -> None:
    """Raise :class:`DataError` if ITK could not take ``path``'s name."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError("file name is not valid UTF-8", printable(path),
                        "rename the file or folder using plain characters") from exc
