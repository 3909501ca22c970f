"""Every verb against docs/progress-protocol.md: JSON lines only, one last ``done`` or
``error``, errors with ``file`` and ``exit_code``; plus one help style and plain progress
lines when stderr is not a terminal."""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from inference_models import calibrated_model, crop_to_file

from SARCore.cli import VERBS, build_parser, main
from SARCore.progress import PlainReporter, make_reporter

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = (REPO / "docs" / "progress-protocol.md").read_text(encoding="utf-8")


def _table_keys(section: str) -> set[str]:
    """The keys listed in the first table under ``## `section```."""
    text = PROTOCOL.split(f"## `{section}`", 1)[1].split("\n## ", 1)[0]
    return {m for m in re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE)}


def check_stream(stdout: str, exit_code: int) -> list[dict]:
    """Asserts what the protocol promises about one run's stdout; returns the events."""
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert events, "no event at all"
    kinds = [e["event"] for e in events]
    assert set(kinds) <= {"progress", "log", "done", "error"}
    assert kinds.count("done") + kinds.count("error") == 1
    last = events[-1]
    assert last["event"] == ("done" if exit_code == 0 else "error")
    if last["event"] == "error":
        assert _table_keys("error") - {"batch keys"} <= set(last)
        assert last["exit_code"] == exit_code
    for event in events:
        if event["event"] == "progress":
            assert {"step", "total", "message", "elapsed_s", "eta_s"} <= set(event)
            assert 0 <= event["step"] <= event["total"]
        if event["event"] == "log":
            assert isinstance(event["message"], str)
    return events


def _run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_protocol_document_lists_the_fields_the_engine_sends() -> None:
    assert {"event", "step", "total", "message", "stage", "elapsed_s", "eta_s"} <= \
        _table_keys("progress")
    assert {"event", "message", "kind", "file", "exit_code"} <= _table_keys("error")
    for verb in VERBS:
        assert f"| `{verb}` |" in PROTOCOL, f"{verb}'s done keys are not documented"


@pytest.mark.parametrize("verb", VERBS)
def test_usage_errors_of_every_verb_end_in_one_json_error(verb, capsys) -> None:
    code, out, err = _run_main([verb, "--progress", "json", "--no-such-option"], capsys)
    assert code == 2
    [event] = check_stream(out, 2)
    assert event["kind"] == "usage" and event["file"] is None
    assert event["message"].startswith(f"sar {verb}: ")
    assert re.search(r"^error: sar " + verb, err, re.MULTILINE)  # one error style on stderr


def test_bad_device_is_refused_the_same_way_everywhere(capsys) -> None:
    for verb in ("segment", "finetune", "pretrain"):
        code, out, _ = _run_main([verb, "--progress", "json", "--device", "gpu0"], capsys)
        assert code == 2 and "cuda:N" in check_stream(out, 2)[-1]["message"]
    parser = build_parser()
    for value in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        args = parser.parse_args(["segment", "x", "--model", "m", "--out", "o", "--device",
                                  value])
        assert args.device == value


def test_every_default_is_stated_in_one_form() -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for verb, parser in sub.choices.items():
        text = parser.format_help()
        assert not re.search(r"\(default [^:]", text), f"{verb}: '(default X)' form"
        for action in parser._actions:
            if (action.option_strings and action.default not in (None, False)
                    and action.default is not argparse.SUPPRESS):
                help_text = parser._get_formatter()._get_help_string(action)
                assert "(default:" in help_text, f"{verb} {action.option_strings[0]}"


def test_info_json_and_file_errors(tmp_path, brats_flair) -> None:
    crop = crop_to_file(brats_flair, tmp_path / "crop.nii.gz", (56, 96, 56), (48, 56, 32))
    model = calibrated_model(tmp_path / "m.sarmodel", [crop])
    run = subprocess.run([sys.executable, "-m", "SARCore", "info", str(model), "--progress",
                          "json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    done = check_stream(run.stdout, run.returncode)[-1]
    assert run.returncode == 0 and done["header"]["task"] == "segmentation"
    assert done["model"] == str(model)
    run = subprocess.run([sys.executable, "-m", "SARCore", "info", str(crop), "--progress",
                          "json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    error = check_stream(run.stdout, run.returncode)[-1]
    assert run.returncode == 1 and error["file"] == str(crop)
    run = subprocess.run([sys.executable, "-m", "SARCore", "info", str(model)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "segmentation" in run.stdout
    assert run.stderr.strip().splitlines()[-1].startswith("sar info: ")


def test_python_without_the_packages_gets_one_sentence() -> None:
    run = subprocess.run([sys.executable, "-S", "-m", "SARCore", "info", "x.sarmodel",
                          "--progress", "json"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    error = check_stream(run.stdout, 1)[-1]
    assert error["kind"] == "MissingPackage" and "./sar.sh setup" in error["message"]


def test_plain_lines_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    reporter = make_reporter("bar", "cubes", stream)
    assert isinstance(reporter, PlainReporter)
    for step in range(0, 101):
        reporter.progress(step, 100, f"case {step}", stage="cubes")
    reporter.done(out="work/cubes", wrote="12 cubes")
    text = stream.getvalue()
    assert "\r" not in text and "█" not in text
    lines = text.splitlines()
    assert lines[0].startswith("[cubes]   0 % (0/100)")
    assert 20 <= len(lines) <= 23  # every 5 %, not every step
    assert lines[-1] == "sar cubes: wrote 12 cubes to work/cubes"


def test_sar_sh_without_a_verb_prints_clean_help() -> None:
    run = subprocess.run(["bash", str(REPO / "sar.sh")], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0
    assert "./sar.sh setup" in run.stdout and "./sar.sh VERB" in run.stdout
    assert not any(line.startswith("#") for line in run.stdout.splitlines())
    assert "set -euo" not in run.stdout
