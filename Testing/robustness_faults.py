"""Helpers of the robustness suite: real faults in real processes.

* :func:`run_limited`: run Python code (or ``python -m SARCore``) in a child process whose
  files may not grow past a byte limit (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored so a
  write fails with EFBIG instead of killing the process): a short write, as a full disk
  or a quota gives, that ITK's writers do not report.
* :func:`sar`: run the command line in a real process and parse its JSON events.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _limit(max_bytes: int | None):
    def apply() -> None:
        if max_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return apply


def run_limited(code: str, max_bytes: int | None = None, timeout: float = 120
                ) -> subprocess.CompletedProcess:
    """``python -c code`` with files limited to ``max_bytes`` (ignored signals: none left)."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_limit(max_bytes),
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def sar(*args: str, max_bytes: int | None = None, timeout: float = 300,
        extra_env: dict[str, str] | None = None) -> tuple[int, list[dict], str]:
    """``python -m SARCore ARGS --progress json``: exit code, JSON events, stderr."""
    result = subprocess.run([sys.executable, "-m", "SARCore", *args, "--progress", "json"],
                            cwd=REPO, capture_output=True, text=True, timeout=timeout,
                            preexec_fn=_limit(max_bytes),
                            env={**os.environ, **(extra_env or {})})
    events = [json.loads(line) for line in result.stdout.splitlines()
              if line.strip().startswith("{")]
    return result.returncode, events, result.stderr


def errors(events: list[dict]) -> list[str]:
    return [e["message"] for e in events if e.get("event") == "error"]


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
