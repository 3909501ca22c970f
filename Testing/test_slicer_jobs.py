"""The module's process runner on real process trees: events, exit codes, cancel.

The engine here is a small ``python -c`` program that prints SARCore-style JSON lines and
spawns real children (one of them ignores SIGINT), so cancelling has a real tree to end.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import conftest_slicer  # noqa: F401  (puts the module folder on sys.path)
import pytest

from SARSegmentationLib.JobRunner import JobStatus, ProcessRunner, describeExit
from SARSegmentationLib.Progress import DONE, ERROR, LOG, PROGRESS, STDERR, ProgressState

TREE_ENGINE = textwrap.dedent("""
    import json, os, signal, subprocess, sys, time
    out = sys.argv[1]
    stubborn = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)"
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]),
                subprocess.Popen([sys.executable, "-c", stubborn])]
    with open(os.path.join(out, f".tmp-{os.getpid()}-result.bin"), "wb") as handle:
        handle.write(b"half")
    print(json.dumps({"event": "log", "message": "pids",
                      "pids": [os.getpid()] + [c.pid for c in children]}), flush=True)
    for step in range(1, 10000):
        print(json.dumps({"event": "progress", "step": step, "total": 10000,
                          "message": f"step {step}", "stage": "work", "elapsed_s": step,
                          "eta_s": 10000 - step, "loss": 0.5}), flush=True)
        time.sleep(0.05)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie waiting to be reaped has ended
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _run(code: str, *args: str, timeout: float = 60) -> tuple[ProcessRunner, list]:
    runner = ProcessRunner([sys.executable, "-c", code, *args])
    runner.start()
    events: list = []
    runner.wait(timeout=timeout, onEvent=events.append)
    return runner, events


def test_events_progress_and_done_are_parsed() -> None:
    code = textwrap.dedent("""
        import json, sys
        print("a plain line from a library")
        print(json.dumps({"event": "progress", "step": 3, "total": 12, "message": "epoch 3",
                          "stage": "finetune", "elapsed_s": 30.0, "eta_s": 90.0,
                          "dice": 0.8}), flush=True)
        print("warning: something", file=sys.stderr, flush=True)
        print(json.dumps({"event": "done", "outputs": [{"case": "a", "label": "x"}]}))
    """)
    runner, events = _run(code)
    kinds = [e.kind for e in events]
    assert kinds.count(PROGRESS) == 1 and kinds.count(DONE) == 1
    assert any(e.kind == LOG and e.message == "a plain line from a library" for e in events)
    assert any(e.kind == STDERR and "warning: something" in e.message for e in events)
    state = ProgressState()
    assert state.update(next(e for e in events if e.kind == PROGRESS))
    assert state.percent == 25 and state.etaSeconds == 90.0
    assert state.statusText() == "finetune: epoch 3 - 25% - about 1 min 30 s left - dice=0.8"
    assert runner.result.ok and runner.result.exitCode == 0
    assert runner.result.summary["outputs"][0]["case"] == "a"


def test_failing_job_reports_the_engine_error_message() -> None:
    code = textwrap.dedent("""
        import json, sys
        print(json.dumps({"event": "error", "message": "/data/x.nii.gz: cannot be read",
                          "kind": "DataError", "file": "/data/x.nii.gz"}), flush=True)
        sys.exit(1)
    """)
    runner, events = _run(code)
    assert any(e.kind == ERROR for e in events)
    assert runner.result.status is JobStatus.FAILED and runner.result.exitCode == 1
    assert runner.result.message == "/data/x.nii.gz: cannot be read"
    assert runner.result.error["file"] == "/data/x.nii.gz"


def test_crash_without_error_event_shows_the_last_stderr_line() -> None:
    runner, _ = _run("import sys; sys.stderr.write('Traceback...\\nValueError: boom\\n'); "
                     "sys.exit(1)")
    assert runner.result.message == "Failed: ValueError: boom"


@pytest.mark.parametrize(("code", "expected"), [
    (2, "Invalid settings"), (130, "Interrupted"), (-9, "ran out of memory"),
    (3, "crashed (exit code 3)")])
def test_exit_codes_have_clear_messages(code: int, expected: str) -> None:
    assert expected in describeExit(code, None, [])


def test_cancel_ends_the_whole_tree_and_removes_temporaries(tmp_path: Path) -> None:
    runner = ProcessRunner([sys.executable, "-c", TREE_ENGINE, str(tmp_path)],
                           outputDirs=[tmp_path])
    runner.start()
    pids: list[int] = []
    deadline = time.monotonic() + 30
    while not pids and time.monotonic() < deadline:
        for event in runner.poll():
            if event.kind == LOG and event.data.get("pids"):
                pids = event.data["pids"]
        time.sleep(0.05)
    assert len(pids) == 3 and all(_alive(p) for p in pids)
    assert list(tmp_path.glob(".tmp-*"))
    started = time.monotonic()
    runner.cancel(graceSeconds=1.0)
    while runner.running:
        runner.poll()
        time.sleep(0.05)
    took = time.monotonic() - started
    assert runner.result.status is JobStatus.CANCELLED
    assert runner.result.message == "Cancelled by the user."
    gone_by = time.monotonic() + 3
    while any(_alive(p) for p in pids) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert not [p for p in pids if _alive(p)], "a process of the tree survived the cancel"
    assert took < 6
    assert not list(tmp_path.glob(".tmp-*")), "a half-written file was left behind"


def test_non_blocking_cancel_escalates_from_poll(tmp_path: Path) -> None:
    code = ("import signal, time, json; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "print(json.dumps({'event': 'log', 'message': 'ready'}), flush=True); "
            "time.sleep(600)")
    runner = ProcessRunner([sys.executable, "-c", code])
    runner.start()
    while not any(e.kind == LOG for e in runner.poll()):
        time.sleep(0.05)
    started = time.monotonic()
    runner.cancel(graceSeconds=0.5, block=False)
    assert time.monotonic() - started < 0.3  # the GUI thread is not held
    while runner.running and time.monotonic() - started < 10:
        runner.poll()
        time.sleep(0.05)
    assert runner.result.status is JobStatus.CANCELLED
    assert not _alive(runner.pid)


def test_timeout_stops_the_job_with_its_reason() -> None:
    runner, _ = _run("import time; time.sleep(600)", timeout=0.5)
    assert runner.result.status is JobStatus.CANCELLED
    assert "longer than 0.5 s" in runner.result.message


def test_progress_state_handles_unknown_totals() -> None:
    from SARSegmentationLib.Progress import parseLine

    event = parseLine(json.dumps({"event": "progress", "step": 0, "total": 0,
                                  "message": "reading", "eta_s": None}))
    state = ProgressState()
    state.update(event)
    assert state.percent == -1 and state.statusText() == "reading"
    assert parseLine("   \n") is None
    assert parseLine('{"event": "other"}').kind == LOG
