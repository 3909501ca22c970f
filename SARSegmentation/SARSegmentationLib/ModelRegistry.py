"""The models folder: installed ``*.sarmodel`` files listed by their header.

Headers are read through the engine (``python -m SARCore info MODEL --json``) so this
process needs neither torch nor the model format's details; the answers are cached in
``.sar-models-index.json`` in the folder (keyed by file size and time), so listing a
folder costs one engine start per new or changed file only. Importing copies a file into
the folder (fully offline) after its header has been read and checked.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from SARSegmentationLib.Engine import engineEnvironment, ensureEngineImportable, pythonExecutable

ensureEngineImportable()
from SARCore.atomic import atomic_path, write_json_atomic  # noqa: E402
from SARCore.errors import ModelFileError  # noqa: E402

MODEL_SUFFIX = ".sarmodel"
INDEX_NAME = ".sar-models-index.json"
_memo: dict[tuple[str, int, int], dict[str, Any]] = {}


def _fileKey(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _parseHeaderOutput(text: str) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        data = json.loads(text)
        if isinstance(data, dict):
            return data
    for line in reversed(text.splitlines()):  # one JSON object on its own line
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            if isinstance(data, dict) and "format" in data:
                return data
    return None


def readHeader(path: str | Path, python: str | None = None,
               timeout: float = 180.0) -> dict[str, Any]:
    """The JSON header of a model file, read and validated by the engine."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError("model file not found", path)
    key = _fileKey(path)
    if key in _memo:
        return dict(_memo[key])
    command = [python or pythonExecutable(), "-m", "SARCore", "info", str(path), "--json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=timeout, env=engineEnvironment(),
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ModelFileError(f"reading the header took more than {timeout:.0f} s", path) from exc
    except OSError as exc:  # the interpreter itself is missing or not executable
        raise ModelFileError(f"the engine could not start to read it ({exc})", path) from exc
    header = _parseHeaderOutput(done.stdout) if done.returncode == 0 else None
    if header is None:
        said = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or [""])[-1]
        raise ModelFileError("not a readable SAR model file" + (f": {said}" if said else ""),
                             path)
    if header.get("format") not in (None, "sar-model") or "task" not in header:
        raise ModelFileError("the file's header is not a SAR model header", path)
    _memo[key] = header
    return dict(header)


@dataclass(frozen=True)
class ModelEntry:
    """One model file and its header."""

    path: Path
    header: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.header.get("name") or self.path.stem)

    @property
    def task(self) -> str:
        return str(self.header.get("task", ""))

    @property
    def classNames(self) -> list[str]:
        return [str(c.get("name")) for c in self.header.get("classes") or []
                if int(c.get("label", 0)) > 0]

    def summary(self) -> str:
        """One line for a list: name, task, classes, modalities, method."""
        parts = [self.name, self.task or "?"]
        if self.classNames:
            parts.append("classes: " + ", ".join(self.classNames))
        modalities = self.header.get("modalities") or []
        if modalities:
            parts.append("modality: " + ", ".join(str(m) for m in modalities))
        if self.header.get("method"):
            parts.append(f"method: {self.header['method']}")
        return " | ".join(parts)


def describeHeader(header: dict[str, Any]) -> str:
    """The whole header as readable ``key: value`` lines (for 'Show header')."""
    lines = []
    for key, value in header.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


class ModelRegistry:
    """A folder of model files with a cached index of their headers."""

    def __init__(self, folder: str | Path, python: str | None = None) -> None:
        self.folder = Path(folder).expanduser()
        self.python = python

    def _loadIndex(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((self.folder / INDEX_NAME).read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        return {}

    def _saveIndex(self, index: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # a read-only folder still lists fine
            write_json_atomic(self.folder / INDEX_NAME, index)

    def models(self, errors: list[str] | None = None) -> list[ModelEntry]:
        """Every readable model in the folder, by name; unreadable ones go to ``errors``.

        Both answers are cached per file (size and time), so an unchanged folder lists
        without starting the engine at all.
        """
        if not self.folder.is_dir():
            return []
        index, fresh, entries = self._loadIndex(), {}, []
        for path in sorted(self.folder.glob(f"*{MODEL_SUFFIX}")):
            stat = path.stat()
            record = index.get(path.name)
            if not (record and record.get("size") == stat.st_size
                    and record.get("mtime_ns") == stat.st_mtime_ns):
                record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
                try:
                    record["header"] = readHeader(path, self.python)
                except ModelFileError as exc:
                    record["error"] = str(exc)
            fresh[path.name] = record
            if "header" in record:
                entries.append(ModelEntry(path, record["header"]))
            elif errors is not None:
                errors.append(record.get("error", f"{path}: unreadable"))
        if fresh != index:
            self._saveIndex(fresh)
        return sorted(entries, key=lambda e: e.name.lower())

    def importModel(self, source: str | Path) -> ModelEntry:
        """Copy a model file into the folder after checking its header (no network)."""
        source = Path(source)
        header = readHeader(source, self.python)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / (source.stem + MODEL_SUFFIX)
        if target.exists() and target.resolve() == source.resolve():
            return ModelEntry(target, header)
        index = 2
        while target.exists() and not _sameBytes(target, source):
            target = self.folder / f"{source.stem}_{index}{MODEL_SUFFIX}"
            index += 1
        if not target.exists():
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        _memo[_fileKey(target)] = header  # the copy has the same header: no second read
        self.models()  # refresh the index
        return ModelEntry(target, header)


def _sameBytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(1 << 20)
            if chunk != fb.read(1 << 20):
                return False
            if not chunk:
                return True
