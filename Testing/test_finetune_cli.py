"""``sar finetune`` on the command line: options, a config file, JSON progress, exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from finetune_data import COARSE
from pretrain_data import one_torch_thread

from SARCore.cli import main
from SARCore.models.modelfile import read_header


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_cli_finetunes_from_scratch_with_a_config_file(
        data_dir: Path, brats_cache_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "finetune.yaml"
    config.write_text(yaml.safe_dump({
        "spacing": list(COARSE), "patch_size": [32, 32, 16],
        "patches_per_case": 2, "val_patches_per_case": 2, "test_ratio": 0.25,
        "epochs": 5, "device": "cpu"}))
    code = main(["finetune", "--data", str(data_dir / "brats2015"), "--sequence", "flair",
                 "--labels", "tumor:>0", "--init", "scratch", "--width-divisor", "8",
                 "--max-steps", "2", "--batch-size", "2", "--cache-dir", str(brats_cache_dir),
                 "--config", str(config), "--out", str(tmp_path / "out"), "--progress", "json"])
    assert code == 0
    events = _events(capsys.readouterr().out)
    done = events[-1]
    assert done["event"] == "done" and done["splits"] == ["trial_0"]
    said = [e["message"] for e in events if e["event"] == "log"]
    assert any(m.startswith("preprocessing: preset brats (zscore_nonzero; auto: the data are "
                            "brats cases)") for m in said)  # no preset given: from the layout
    assert any(e["event"] == "progress" and e.get("stage") == "finetune trial_0" for e in events)
    training = [e for e in events if e["event"] == "progress"
                and e.get("stage") == "finetune trial_0"]
    assert training and training[0]["step"] == 0  # the bar starts at 0 %
    validation = [e for e in events if e["event"] == "progress"
                  and e.get("stage") == "finetune trial_0 validation"]
    assert validation and validation[-1]["step"] == validation[-1]["total"]  # it moves
    assert done["out"] and done["wrote"].startswith("model.sarmodel")
    header = read_header(done["model"])
    assert header["width_divisor"] == 8 and header["classes"][0]["name"] == "tumor"
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["config"]["max_steps"] == 2 and saved["config"]["epochs"] == 5  # CLI + file


def test_cli_reports_bad_options_and_missing_models(data_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    base = ["finetune", "--data", str(data_dir / "brats2015"), "--out", str(tmp_path / "o"),
            "--progress", "json"]
    assert main([*base, "--labels", "tumor"]) == 2
    error = _events(capsys.readouterr().out)[-1]
    assert error["event"] == "error" and "lacks a rule" in error["message"]
    missing = tmp_path / "nope.sarmodel"
    assert main([*base, "--init", str(missing), "--preset", "brats"]) == 1
    error = _events(capsys.readouterr().out)[-1]
    assert error["kind"] == "ModelFileError" and error["file"] == str(missing)


def test_fresh_head_flag_turns_off_the_head_transfer(tmp_path: Path) -> None:
    import argparse

    from SARCore.cli import finetune as cli_finetune

    parser = argparse.ArgumentParser()
    cli_finetune.add_arguments(parser)
    base = ["--out", str(tmp_path), "--init", "model.sarmodel"]
    assert "transfer_head" not in cli_finetune._options(parser.parse_args(base))
    options = cli_finetune._options(parser.parse_args([*base, "--fresh-head"]))
    assert options["transfer_head"] is False and options["init"] == "model.sarmodel"
