"""Progress reporting: library code calls a :class:`Reporter`; only the CLI picks one.

Three reporters share one interface:

* :class:`BarReporter`  - a tqdm progress bar on stderr (people at a terminal),
* :class:`JsonReporter` - one JSON object per line on stdout (the Slicer module),
* :class:`NullReporter` - silence (library use, tests).

JSON events (one per line, flushed at once)::

    {"event": "progress", "step": 3, "total": 10, "message": "...", "stage": "...",
     "elapsed_s": 1.2, "eta_s": 2.8, ...extra}
    {"event": "log", "message": "..."}
    {"event": "done", ...summary}
    {"event": "error", "message": "...", ...extra}
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)


@runtime_checkable
class Reporter(Protocol):
    def progress(self, step: int, total: int, message: str = "", **extra: Any) -> None: ...

    def log(self, message: str) -> None: ...

    def done(self, **summary: Any) -> None: ...

    def error(self, message: str, **extra: Any) -> None: ...


class NullReporter:
    """Reports nothing; messages still go to :mod:`logging`."""

    def progress(self, step: int, total: int, message: str = "", **extra: Any) -> None:
        pass

    def log(self, message: str) -> None:
        log.info(message)

    def done(self, **summary: Any) -> None:
        pass

    def error(self, message: str, **extra: Any) -> None:
        log.error(message)


class _StageClock:
    """Measures elapsed time and estimates time left within one stage."""

    def __init__(self) -> None:
        self.key: tuple[str, int] | None = None
        self.start = time.monotonic()
        self.first_step = 0

    def update(self, stage: str, step: int, total: int) -> tuple[float, float | None]:
        now = time.monotonic()
        if self.key != (stage, total) or step < self.first_step:
            self.key, self.start, self.first_step = (stage, total), now, step
        elapsed = now - self.start
        done = step - self.first_step
        eta = elapsed / done * (total - step) if done > 0 and total > 0 else None
        return elapsed, eta


class JsonReporter:
    """Machine-readable progress for the Slicer module: one JSON object per line."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.clock = _StageClock()

    def _emit(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, default=_json_default) + "\n")
        self.stream.flush()

    def progress(self, step: int, total: int, message: str = "", **extra: Any) -> None:
        stage = str(extra.pop("stage", ""))
        elapsed, eta = self.clock.update(stage, step, total)
        record: dict[str, Any] = {"event": "progress", "step": int(step), "total": int(total),
                                  "message": message}
        if stage:
            record["stage"] = stage
        record["elapsed_s"] = round(elapsed, 2)
        record["eta_s"] = None if eta is None else round(eta, 1)
        record.update(extra)
        self._emit(record)

    def log(self, message: str) -> None:
        self._emit({"event": "log", "message": message})

    def done(self, **summary: Any) -> None:
        self._emit({"event": "done", **summary})

    def error(self, message: str, **extra: Any) -> None:
        self._emit({"event": "error", "message": message, **extra})


class BarReporter:
    """A tqdm bar on stderr per stage; log lines printed above the bar."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self._bar = None
        self._key: tuple[str, int] | None = None

    def progress(self, step: int, total: int, message: str = "", **extra: Any) -> None:
        from tqdm import tqdm

        stage = str(extra.get("stage", ""))
        if self._bar is None or self._key != (stage, total) or step < self._bar.n:
            self._close()
            # Steps reported before the bar existed count as already done, so the first
            # rate is measured between two reports (not "1 step in 0 s": 18000 it/s).
            self._bar = tqdm(total=total, initial=step, desc=stage or None, file=self.stream,
                             dynamic_ncols=True, leave=True)
            self._key = (stage, total)
        self._bar.update(step - self._bar.n)
        shown = {k: v for k, v in extra.items() if k != "stage" and isinstance(v, (int, float))}
        postfix = ", ".join(f"{k}={v:.4g}" for k, v in list(shown.items())[:4])
        self._bar.set_postfix_str(" ".join(p for p in (message, postfix) if p), refresh=True)
        if step >= total:
            self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def log(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream)

    def done(self, **summary: Any) -> None:
        self._close()

    def error(self, message: str, **extra: Any) -> None:
        self._close()
        print(f"error: {message}", file=self.stream)


def make_reporter(kind: str) -> Reporter:
    """``bar`` | ``json`` | ``none`` (the CLI's ``--progress`` option)."""
    if kind == "json":
        return JsonReporter()
    if kind == "bar":
        return BarReporter()
    if kind == "none":
        return NullReporter()
    raise ValueError(f"--progress must be one of bar, json, none, not {kind!r}")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
