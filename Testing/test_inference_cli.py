"""``python -m SARCore segment`` in a real process with ``--progress json``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk
from inference_models import calibrated_model, crop_to_file

REPO = Path(__file__).resolve().parents[1]


def _segment(*args: str) -> tuple[int, list[dict], str]:
    result = subprocess.run([sys.executable, "-m", "SARCore", "segment", *args,
                             "--progress", "json"], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.returncode, events, result.stderr


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, brats_flair) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli-in")
    crop = crop_to_file(brats_flair, folder / "crop1.nii.gz", (56, 96, 56), (48, 56, 32))
    (folder / "zz_broken.nrrd").write_text("NRRD0004\ntype: float\ndimension: 3\n")
    model = calibrated_model(folder.parent / "cli.sarmodel", [crop])
    return folder, model


def test_batch_json_events_skip_and_overwrite(tmp_path, inputs) -> None:
    folder, model = inputs
    out = tmp_path / "out"
    code, events, stderr = _segment(str(folder), "--model", str(model), "--out", str(out))
    assert code == 1, stderr  # one case failed
    kinds = [e["event"] for e in events]
    assert "progress" in kinds and kinds[-1] == "error" and "done" not in kinds
    end = events[-1]
    assert end["exit_code"] == 1 and end["file"].endswith("zz_broken.nrrd")
    [output] = end["outputs"]
    assert output["case"] == "crop1"
    assert Path(output["label"]) == out / "crop1_label.nii.gz"
    assert Path(output["segmentation"]) == out / "crop1.seg.nrrd"
    assert sitk.ReadImage(output["label"]).GetSize() == (48, 56, 32)
    [failed] = end["failed"]
    assert failed["case"] == "zz_broken" and "zz_broken.nrrd" in failed["error"]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[0]["step"] == 0  # the bar starts at 0 %
    assert progress[-1]["step"] == progress[-1]["total"] == 200  # 2 cases x 100 steps
    windows = [e for e in progress if "window" in e["message"]]
    assert windows and 0 < windows[0]["step"] < 100  # moves inside a case

    # Same model, same input: already done, skipped (not refused, not redone).
    label = out / "crop1_label.nii.gz"
    stamp = label.stat().st_mtime_ns
    code, events, stderr = _segment(str(folder / "crop1.nii.gz"), "--model", str(model),
                                    "--out", str(out))
    assert code == 0, stderr
    done = events[-1]
    assert done["event"] == "done" and not done["outputs"]
    assert [k["case"] for k in done["skipped"]] == ["crop1"]
    assert label.stat().st_mtime_ns == stamp
    assert any("skipped" in e["message"] for e in events if e["event"] == "log")

    # Another model: the outputs came from something else, so they are refused...
    other = calibrated_model(tmp_path / "other.sarmodel", [folder / "crop1.nii.gz"], seed=1)
    code, events, _ = _segment(str(folder / "crop1.nii.gz"), "--model", str(other),
                               "--out", str(out))
    assert code == 1 and events[-1]["event"] == "error"
    assert "came from another model or input" in events[-1]["failed"][0]["error"]
    assert label.stat().st_mtime_ns == stamp
    # ... unless --overwrite.
    code, events, stderr = _segment(str(folder / "crop1.nii.gz"), "--model", str(other),
                                    "--out", str(out), "--overwrite", "--fast",
                                    "--batch-size", "2")
    assert code == 0, stderr
    assert events[-1]["event"] == "done" and events[-1]["failed"] == []
    record = json.loads((out / "crop1.sar.json").read_text())
    assert record["model_sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()


def test_usage_errors_exit_2(tmp_path, inputs) -> None:
    folder, model = inputs
    code, events, _ = _segment(str(folder), "--model", str(model), "--out", str(tmp_path),
                               "--window", "20", "64", "32")
    assert code == 2
    assert "multiples of 8" in events[-1]["message"]


def test_unreadable_model_exits_1_naming_it(tmp_path, inputs) -> None:
    folder, _ = inputs
    fake = tmp_path / "fake.sarmodel"
    fake.write_bytes(b"not a model")
    code, events, _ = _segment(str(folder), "--model", str(fake), "--out", str(tmp_path))
    assert code == 1
    assert events[-1]["event"] == "error" and events[-1]["file"] == str(fake)
