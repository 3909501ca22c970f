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
