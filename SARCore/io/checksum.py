"""SHA-256 of files: how the preprocessing manifest tells "unchanged" from "changed"."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def sha256_files(paths: Iterable[str | Path]) -> str:
    """One hex digest over the bytes of ``paths`` in order (a DICOM series is many files)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    return sha256_files([path])
