"""``python -m SARCore segment`` in a real process with ``--progress json``."""

from __future__ import annotations

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


def test_batch_json_events_and_overwrite(tmp_path, inputs) -> None:
    folder, model = inputs
    out = tmp_path / "out"
    code, events, stderr = _segment(str(folder), "--model", str(model), "--out", str(out))
    assert code == 1, stderr  # one case failed
    kinds = [e["event"] for e in events]
    assert "progress" in kinds and kinds.count("done") == 1
    done = next(e for e in events if e["event"] == "done")
    [output] = done["outputs"]
    assert output["case"] == "crop1"
    assert Path(output["label"]) == out / "crop1_label.nii.gz"
    assert Path(output["segmentation"]) == out / "crop1.seg.nrrd"
    assert sitk.ReadImage(output["label"]).GetSize() == (48, 56, 32)
    [failed] = done["failed"]
    assert failed["case"] == "zz_broken" and "zz_broken.nrrd" in failed["error"]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["step"] == progress[-1]["total"] == 200  # 2 cases x 100 steps

    code, events, _ = _segment(str(folder / "crop1.nii.gz"), "--model", str(model),
                               "--out", str(out))
    done = next(e for e in events if e["event"] == "done")
    assert code == 1 and not done["outputs"]
    assert "already exists" in done["failed"][0]["error"]
    code, events, stderr = _segment(str(folder / "crop1.nii.gz"), "--model", str(model),
                                    "--out", str(out), "--overwrite", "--fast",
                                    "--batch-size", "2")
    assert code == 0, stderr
    assert next(e for e in events if e["event"] == "done")["failed"] == []


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
