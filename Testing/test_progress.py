"""Progress reporters: JSON lines for the Slicer module, a terminal bar for people."""

from __future__ import annotations

import io
import json
import re
import time

from SARCore.progress import BarReporter, JsonReporter


def test_json_lines_carry_step_total_stage_and_time_left() -> None:
    stream = io.StringIO()
    reporter = JsonReporter(stream)
    reporter.progress(1, 4, "epoch 1/2", stage="pretrain", loss=0.5)
    time.sleep(0.05)
    reporter.progress(2, 4, "epoch 1/2", stage="pretrain", loss=0.4)
    reporter.log("hello")
    reporter.done(model="m.sarmodel")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["progress", "progress", "log", "done"]
    first, second = records[:2]
    assert (second["step"], second["total"], second["stage"], second["loss"]) == (2, 4,
                                                                                "pretrain", 0.4)
    assert first["eta_s"] is None and second["eta_s"] > 0  # two steps left at ~0.05 s each
    assert records[-1]["model"] == "m.sarmodel"


def test_bar_rate_is_measured_between_reports_not_from_the_first_one() -> None:
    stream = io.StringIO()
    reporter = BarReporter(stream)
    reporter.progress(1, 10, stage="finetune")  # the first report comes after step 1
    time.sleep(0.2)
    reporter.progress(2, 10, stage="finetune")
    rates = [float(r) for r in re.findall(r"([\d.]+)it/s", stream.getvalue())]
    assert rates and max(rates) < 50  # one step per 0.2 s, not "18000 it/s"
    reporter.done()
    assert "2/10" in stream.getvalue()


def test_an_ascii_terminal_gets_escapes_not_a_crash() -> None:
    """Under LC_ALL=C the streams are ASCII: the closing table's '±' must not crash."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0",
           "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": ""}
    code = ("import sys; from SARCore.cli import _tolerate_narrow_terminals as t; t(); "
            "print(sys.stdout.encoding); print('0.54 \\u00b1 0.00')")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    lines = result.stdout.decode("ascii").split()
    assert lines[0].lower() in ("ascii", "ansi_x3.4-1968") and "\\xb1" in lines
