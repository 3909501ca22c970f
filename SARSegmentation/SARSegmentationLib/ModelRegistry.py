"""The models folder: installed ``*.sarmodel`` files listed by their header.

Headers are read through the engine (``python -m SARCore info MODEL --json``) so this
process needs neither torch nor the model format's details; the answers are cached in
``.sar-models-index.json`` in the folder (keyed by file size and time), so listing a
folder costs one engine start per new or changed file only. Only headers are cached:
a failed read (e.g. a model copied in before torch was installed) is tried again next
time. The engine takes seconds to start, so the panel never reads on the GUI thread:
:meth:`ModelRegistry.models` can leave unknown files in a ``pending`` list for a
:class:`HeaderReader` thread. Importing copies a file into the folder (fully offline)
after its header has been read and checked.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
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


def _indexedHeader(path: Path, key: tuple[str, int, int]) -> dict[str, Any] | None:
    """The header the folder's index holds for this exact file (size and time), if any."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        index = json.loads((path.parent / INDEX_NAME).read_text(encoding="utf-8"))
        record = index.get(path.name)
        if (isinstance(record, dict) and isinstance(record.get("header"), dict)
                and record.get("size") == key[1] and record.get("mtime_ns") == key[2]):
            return record["header"]
    return None


def cachedHeader(path: str | Path) -> dict[str, Any] | None:
    """The header of ``path`` without starting the engine (memory, then the folder's
    index), or ``None`` when it has to be read."""
    path = Path(path)
    if not path.is_file():
        return None
    key = _fileKey(path)
    if key not in _memo:
        header = _indexedHeader(path, key)
        if header is None:
            return None
        _memo[key] = header
    return dict(_memo[key])


def readHeader(path: str | Path, python: str | None = None,
               timeout: float = 180.0) -> dict[str, Any]:
    """The JSON header of a model file, read and validated by the engine.

    Known files (same size and time) come from memory or the folder's index at no cost.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError("model file not found", path)
    cached = cachedHeader(path)
    if cached is not None:
        return cached
    key = _fileKey(path)
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

    def models(self, errors: list[str] | None = None,
               pending: list[Path] | None = None) -> list[ModelEntry]:
        """Every readable model in the folder, by name; unreadable ones go to ``errors``.

        Headers are cached per file (size and time), so an unchanged folder lists without
        starting the engine at all; failures are not cached. With a ``pending`` list,
        files whose header is not known yet are put there instead of being read (hand
        them to a :class:`HeaderReader`, then list again).
        """
        if not self.folder.is_dir():
            return []
        index, fresh, entries = self._loadIndex(), {}, []
        for path in sorted(self.folder.glob(f"*{MODEL_SUFFIX}")):
            stat = path.stat()
            record = index.get(path.name)
            if not (record and "header" in record and record.get("size") == stat.st_size
                    and record.get("mtime_ns") == stat.st_mtime_ns):
                record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
                known = _memo.get(_fileKey(path))
                if known is not None:
                    record["header"] = dict(known)
                elif pending is not None:
                    pending.append(path)
                    continue
                else:
                    try:
                        record["header"] = readHeader(path, self.python)
                    except ModelFileError as exc:
                        record["error"] = str(exc)  # shown, and tried again next time
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


class HeaderReader:
    """Reads model headers in a background thread (the engine takes seconds to start).

    The panel starts one with the ``pending`` files of :meth:`ModelRegistry.models`,
    polls :attr:`done` from its timer and then lists again: the headers are in memory.
    """

    def __init__(self, paths: list[Path], python: str | None = None) -> None:
        self.paths = list(paths)
        self.python = python
        self.errors: dict[Path, str] = {}
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="SAR-header-reader")

    def start(self) -> HeaderReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        for path in self.paths:
            try:
                readHeader(path, self.python)
            except Exception as exc:  # reported through errors, never raised
                self.errors[path] = str(exc)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done


class ModelListing:
    """The panel's view of a models folder, listed without blocking the GUI thread.

    :meth:`list` answers at once from the cache and starts a :class:`HeaderReader` for
    files not known yet; :meth:`poll` says when it finished (list again then). Files
    whose read failed are not retried until :meth:`forget` (the Refresh button).
    """

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.reader: HeaderReader | None = None
        self.failed: dict[Path, str] = {}

    @property
    def busy(self) -> bool:
        return self.reader is not None and not self.reader.done

    def list(self) -> tuple[list[ModelEntry], list[str]]:
        """The models known now and the errors to show; unknown files read in background."""
        errors: list[str] = []
        pending: list[Path] = []
        entries = self.registry.models(errors, pending)
        errors += [self.failed[p] for p in pending if p in self.failed]
        todo = [p for p in pending if p not in self.failed]
        if todo and not self.busy:
            self.reader = HeaderReader(todo, self.registry.python).start()
        return entries, errors

    def poll(self) -> bool:
        """``True`` once when a background read has finished."""
        if self.reader is None or not self.reader.done:
            return False
        self.failed.update(self.reader.errors)
        self.reader = None
        return True

    def forget(self) -> None:
        """Read failed files again (e.g. after torch was installed)."""
        self.failed.clear()


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
