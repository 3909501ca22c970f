"""Reading SARCore's JSON progress lines and turning them into a percentage and time left.

The engine prints one JSON object per line (``--progress json``)::

    {"event": "progress", "step", "total", "message", "stage", "elapsed_s", "eta_s", ...}
    {"event": "log", "message"}   {"event": "done", ...}   {"event": "error", "message", ...}

Any other line (a stray print, a warning) becomes a ``log`` event carrying the raw text,
so nothing the engine says is lost from the log box.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

PROGRESS, LOG, DONE, ERROR, STDERR = "progress", "log", "done", "error", "stderr"
_STANDARD_KEYS = {"event", "step", "total", "message", "stage", "elapsed_s", "eta_s"}


@dataclass(frozen=True)
class Event:
    """One thing the engine said; ``data`` is the whole JSON object (empty for raw lines)."""

    kind: str
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def parseLine(line: str, source: str = "stdout") -> Event | None:
    """One output line as an :class:`Event`; ``None`` for a blank line."""
    text = line.rstrip("\r\n")
    if not text.strip():
        return None
    if source == "stderr":
        return Event(STDERR, text)
    try:
        data = json.loads(text)
    except ValueError:
        return Event(LOG, text)
    if not isinstance(data, dict) or data.get("event") not in (PROGRESS, LOG, DONE, ERROR):
        return Event(LOG, text)
    return Event(str(data["event"]), str(data.get("message", "") or ""), data)


def formatDuration(seconds: float | None) -> str:
    """``75`` -> ``"1 min 15 s"``; ``None`` -> ``""`` (unknown)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@dataclass
class ProgressState:
    """What the panel shows: the stage, its percentage, the time left, the last metrics."""

    stage: str = ""
    message: str = ""
    step: int = 0
    total: int = 0
    elapsedSeconds: float = 0.0
    etaSeconds: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def percent(self) -> int:
        """0-100 within the current stage; -1 when the stage has no known length."""
        if self.total <= 0:
            return -1
        return max(0, min(100, int(100 * self.step / self.total)))

    def update(self, event: Event) -> bool:
        """Take a progress event; returns ``True`` when the state changed."""
        if event.kind != PROGRESS:
            return False
        data = event.data
        self.stage = str(data.get("stage", "") or "")
        self.message = event.message
        self.step = _asInt(data.get("step"))
        self.total = _asInt(data.get("total"))
        self.elapsedSeconds = float(data.get("elapsed_s") or 0.0)
        eta = data.get("eta_s")
        self.etaSeconds = float(eta) if isinstance(eta, (int, float)) else None
        self.metrics = {k: float(v) for k, v in data.items()
                        if k not in _STANDARD_KEYS and isinstance(v, (int, float))
                        and not isinstance(v, bool)}
        return True

    def statusText(self) -> str:
        """One line such as ``"pretrain: epoch 3/10 - 30% - about 2 min left - loss=0.12"``."""
        parts = [": ".join(p for p in (self.stage, self.message) if p) or "working"]
        if self.percent >= 0:
            parts.append(f"{self.percent}%")
        left = formatDuration(self.etaSeconds)
        if left:
            parts.append(f"about {left} left")
        shown = list(self.metrics.items())[:3]
        if shown:
            parts.append(", ".join(f"{k}={v:.4g}" for k, v in shown))
        return " - ".join(parts)


def _asInt(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
