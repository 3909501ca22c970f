"""``bench/gpu_sync_check.py`` in its CPU dry mode: the same stages a GPU run checks for
host synchronisations (corruption batch, SAR training step with device-side metrics)
run end to end and report one JSON line each."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from pretrain_data import subprocess_env

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_sync_check.py"


def test_sync_check_dry_run_on_cpu():
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu"],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line.get("stage") for line in lines[:2]] == ["corruption", "train_step"]
    assert all(line["checked"] is False and line["device"] == "cpu" for line in lines[:2])
    assert lines[2]["sync_free"] is None and math.isfinite(lines[2]["mean_loss"])
