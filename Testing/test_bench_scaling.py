"""bench/bench_scaling.py --quick: every curve is measured, plotted and fitted, at tiny sizes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CURVES = ("segmentation", "preprocess", "cubes", "ddp")


def test_quick_bench_draws_and_fits_every_curve(tmp_path) -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_scaling.py"), "--quick",
                           "--ddp-warmup", "0", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)  # ~45 CPU-s
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for curve in CURVES:
        png = tmp_path / f"scaling_{curve}.png"
        assert png.is_file() and png.stat().st_size > 5000, curve
        assert png.read_bytes()[:8] == PNG_MAGIC, curve
    for name in ("segmentation", "segmentation peak memory", "preprocessing", "cube generation",
                 "DDP throughput"):
        match = re.search(rf"^fit {name}: .*k = (-?\d+\.\d+), (sub-linear|linear|super-linear)",
                          out, re.MULTILINE)
        assert match, f"no fit line for {name}:\n{out}"
    # three segmentation volumes, each with its time, peak memory and the window it used
    assert len(re.findall(r"^  segment .* s, peak \d+\.\d+ GB, window \d+x\d+x\d+$", out,
                          re.MULTILINE)) == 3, out
    assert "width/16" in out and "default 4" in out  # the width used and the default named
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"ratio: \d+\.\d{3}", last), last
    assert float(last.split()[1]) > 0
    assert "2 DDP processes / with 1 process" in out
