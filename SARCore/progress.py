"""Progress reporting: library code calls a :class:`Reporter`; only the CLI picks one.

Three reporters share one interface:

* :class:`BarReporter`  - a tqdm progress bar on stderr (people at a terminal),
* :class:`PlainReporter` - plain progress lines on stderr (log files, pipes),
* :class:`JsonReporter` - one JSON object per line on stdout (the Slicer module),
* :class:`NullReporter` - silence (library use, tests).

JSON events (one per line, flushed at once; the contract is docs/progress-protocol.md)::

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

    def log(self, message: str, **extra: Any) -> None: ...

    def done(self, **summary: Any) -> None: ...

    def error(self, message: str, **extra: Any) -> None: ...


class NullReporter:
    """Reports nothing; messages still go to :mod:`logging`."""

    def progress(self, step: int, total: int, message: str = "", **extra: Any) -> None:
        pass

    def log(self, message: str, **extra: Any) -> None:
        log.info(message)

    def done(self, **summary: Any) -> None:
        pass

    def error(self, message: str, **extra: Any) -> None:
        log.error(message)


class _StageClock:
    """Measures elapsed time and estimates time left, per stage.

    Each stage keeps its own clock, so a training stage interrupted by validation goes
    on with its estimate; a stage whose step goes back (next epoch's validation) starts
    a new clock."""

    def __init__(self) -> None:
        self.clocks: dict[tuple[str, int], tuple[float, int, int]] = {}

    def update(self, stage: str, step: int, total: int) -> tuple[float, float | None]:
        now = time.monotonic()
        start, first_step, last_step = self.clocks.get((stage, total), (now, step, step))
        if step < last_step:
            start, first_step = now, step
        self.clocks[(stage, total)] = (start, first_step, step)
        elapsed = now - start
        done = step - first_step
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

    def log(self, message: str, **extra: Any) -> None:
        self._emit({"event": "log", "message": message, **extra})

    def done(self, **summary: Any) -> None:
        self._emit({"event": "done", **summary})

    def error(self, message: str, **extra: Any) -> None:
        self._emit({"event": "error", "message": message, **extra})


def summary_line(verb: str, summary: dict[str, Any]) -> str:
    """The one line a verb ends with: what it wrote and where (``wrote``/``out`` keys)."""
    name = f"sar {verb}" if verb else "sar"
    wrote, out = summary.get("wrote"), summary.get("out")
    if wrote and out:
        return f"{name}: wrote {wrote} to {out}"
    if wrote:
        return f"{name}: {wrote}"
    return f"{name}: done, results in {out}" if out else f"{name}: done"


class BarReporter:
    """A tqdm bar on stderr per stage; log lines printed above the bar."""

    def __init__(self, stream: IO[str] | None = None, verb: str = "") -> None:
        self.stream = stream or sys.stderr
        self.verb = verb
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
        self._bar.set_postfix_str(_postfix(message, extra), refresh=True)
        if step >= total:
            self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def log(self, message: str, **extra: Any) -> None:
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream)

    def done(self, **summary: Any) -> None:
        self._close()
        print(summary_line(self.verb, summary), file=self.stream)

    def error(self, message: str, **extra: Any) -> None:
        self._close()
        print(f"error: {message}", file=self.stream)


class PlainReporter:
    """Progress as plain lines for log files and pipes (no carriage returns, no blocks).

    A line is written when a stage starts or ends, every ``every_percent`` percent and at
    least every ``every_s`` seconds while steps arrive."""

    def __init__(self, stream: IO[str] | None = None, verb: str = "",
                 every_percent: float = 5.0, every_s: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.verb = verb
        self.every_percent, self.every_s = every_percent, every_s
        self.clock = _StageClock()
        self._last: tuple[tuple[str, int], float, float] | None = None  # key, percent, time

    def progress(self, step: int, total: int, message: str = "", **extra: Any) -> None:
        stage = str(extra.get("stage", ""))
        elapsed, eta = self.clock.update(stage, step, total)
        percent = 100.0 * step / total if total > 0 else 100.0
        now = time.monotonic()
        key = (stage, total)
        last = self._last
        if (last is not None and last[0] == key and step < total
                and percent - last[1] < self.every_percent and now - last[2] < self.every_s):
            return
        if last is not None and last[0] == key and step >= total and last[1] >= 100.0:
            return
        self._last = (key, percent, now)
        left = "" if eta is None else f", about {_duration(eta)} left"
        detail = _postfix(message, extra)
        self.stream.write(f"[{stage or self.verb or 'sar'}] {percent:3.0f} % ({step}/{total})"
                          f"{': ' + detail if detail else ''}, {_duration(elapsed)} elapsed"
                          f"{left}\n")
        self.stream.flush()

    def log(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def done(self, **summary: Any) -> None:
        print(summary_line(self.verb, summary), file=self.stream, flush=True)

    def error(self, message: str, **extra: Any) -> None:
        print(f"error: {message}", file=self.stream, flush=True)


def _postfix(message: str, extra: dict[str, Any]) -> str:
    shown = {k: v for k, v in extra.items() if k != "stage" and isinstance(v, (int, float))}
    values = ", ".join(f"{k}={v:.4g}" for k, v in list(shown.items())[:4])
    return " ".join(p for p in (message, values) if p)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def make_reporter(kind: str, verb: str = "", stream: IO[str] | None = None) -> Reporter:
    """``bar`` | ``json`` | ``none`` (the CLI's ``--progress`` option).

    ``bar`` draws a tqdm bar only when stderr is a terminal; in a log file or a pipe it
    writes :class:`PlainReporter` lines instead."""
    if kind == "json":
        return JsonReporter()
    if kind == "bar":
        err = stream or sys.stderr
        is_tty = getattr(err, "isatty", lambda: False)()
        return BarReporter(err, verb) if is_tty else PlainReporter(err, verb)
    if kind == "none":
        return NullReporter()
    raise ValueError(f"--progress must be one of bar, json, none, not {kind!r}")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
