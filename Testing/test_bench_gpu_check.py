"""bench/gpu_check.sh in its CPU dry mode: every step runs and each figure names its device."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from inference_models import crop_to_file

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_runs_every_step(tmp_path, brats_flair) -> None:
    image = crop_to_file(brats_flair, tmp_path / "flair.nii.gz", (48, 80, 40), (80, 88, 48))
    env = {**os.environ, "PYTHON": sys.executable, "SEGMENT_IMAGE": str(image)}
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for step in ("pre-training bench", "segmentation bench", "CUDA-marked tests"):
        assert "[dry run on CPU" in out and step in out, out[-3000:]
    assert "samples/s" in out  # the pre-training bench's figures
    for workers in (0, 2):  # the data path against what a training step consumes
        assert f"data path, {workers} DataLoader worker(s): " in out, out[-3000:]
    assert "a SAR step consumes width/8 " in out and "x headroom" in out
    assert "ours" in out and "seconds" in out  # the segmentation bench's table
    assert "test_streamed_forward_on_cuda_in_bf16_matches_fp32" in out  # -m cuda selects it
    assert "gpu_check done (status 0)" in out
