"""Done-markers: each finished stage leaves ``<out>/stages/<key>.json``.

A marker records a fingerprint of the settings the stage ran with (including its inputs'
fingerprints), its outputs and how long it took. A second run skips a stage whose marker
matches; a marker written with other settings is refused rather than silently reused or
overwritten, because its folder holds results a report may already cite.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from SARCore.atomic import write_json_atomic
from SARCore.errors import ConfigError
from SARCore.progress import NullReporter, Reporter

log = logging.getLogger(__name__)


def fingerprint(settings: Any) -> str:
    """Short sha256 of the JSON form of ``settings`` (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StageBook:
    """Runs stages once; remembers what ran, what was skipped and how long each took."""

    def __init__(self, out_dir: str | Path, reporter: Reporter | None = None):
        self.folder = Path(out_dir) / "stages"
        self.reporter = reporter or NullReporter()
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def marker(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def read(self, key: str) -> dict[str, Any] | None:
        path = self.marker(key)
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def run(self, key: str, settings: dict[str, Any], work: Callable[[], dict[str, Any]],
            where: str | Path | None = None) -> dict[str, Any]:
        """``work()``'s outputs, or the recorded ones when the stage is already done."""
        stamp = fingerprint(settings)
        done = self.read(key)
        if done is not None:
            if done.get("fingerprint") != stamp:
                raise ConfigError(
                    f"stage {key!r} was already run with other settings", where or
                    self.marker(key), "delete that folder and its marker "
                    f"({self.marker(key)}) to redo it, or choose another --out")
            self.skipped.append(key)
            self.reporter.log(f"skip {key}: already done")
            return {**done["outputs"], "fingerprint": stamp}
        started = time.monotonic()
        self.reporter.log(f"run {key}")
        outputs = work()
        seconds = round(time.monotonic() - started, 1)
        write_json_atomic(self.marker(key), {
            "stage": key, "fingerprint": stamp, "settings": settings, "outputs": outputs,
            "seconds": seconds,
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        self.ran.append(key)
        log.info("stage %s done in %.1f s", key, seconds)
        return {**outputs, "fingerprint": stamp}

    def timings(self) -> dict[str, float]:
        """Seconds per recorded stage in the order they finished (from the markers, so
        stages of earlier, interrupted runs count too)."""
        markers = [json.loads(p.read_text(encoding="utf-8")) for p in self.folder.glob("*.json")]
        markers.sort(key=lambda m: (m.get("finished", ""), m["stage"]))
        return {m["stage"]: float(m.get("seconds", 0.0)) for m in markers}
