"""The code base passes its own linter (ruff, settings in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing() -> None:
    beside_python = Path(sys.executable).with_name("ruff")  # the version pinned with the tests
    ruff = str(beside_python) if beside_python.is_file() else shutil.which("ruff") or "ruff"
    done = subprocess.run([ruff, "check", "--quiet", "."], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
