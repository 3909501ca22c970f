"""Domain errors: each names the file (when there is one), the problem and a hint.

The CLI turns any :class:`SARError` into one clear line (or a JSON ``error`` event)
and exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


class SARError(Exception):
    """Base class of every error a user can cause and fix."""

    def __init__(self, problem: str, path: str | Path | None = None, hint: str | None = None):
        self.problem = problem
        # A name with undecodable bytes is shown as \xNN: printing it must not fail.
        self.path = (os.fsencode(str(path)).decode("utf-8", errors="backslashreplace")
                     if path is not None else None)
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        if self.hint:
            text += f" ({self.hint})"
        return text


class DataError(SARError):
    """An input image, label or dataset description cannot be used."""


class ConfigError(SARError, ValueError):
    """A configuration value or command-line option is invalid."""


class ModelFileError(SARError):
    """A model file is unreadable, tampered with, or does not fit what is asked."""


class CheckpointError(SARError):
    """A training checkpoint is unreadable or does not fit the run being resumed."""


class CancelledError(SARError):
    """The user stopped the job (Ctrl-C or Cancel in Slicer)."""


class WriteError(SARError):
    """An output file could not be written completely (disk full, size limit, no access)."""


class TrainingError(SARError):
    """Training cannot go on: a loss or weight became NaN or infinite."""


class LockError(SARError):
    """Another run is writing to the same output folder."""
