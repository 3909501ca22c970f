"""preprocess_cases and the ``preprocess`` verb: outputs, manifest, resume, bad cases,
and the CLI through a subprocess with JSON progress."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pipeline_data as damage
import pytest
import SimpleITK as sitk

from SARCore.cli import main
from SARCore.io.discovery import discover_cases
from SARCore.preprocess import get_preset, preprocess_cases
from SARCore.preprocess.manifest import load_manifest

REPO = Path(__file__).resolve().parents[1]
CT_2MM = get_preset("ct", target_spacing=(2.0, 2.0, 2.0))


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_outputs_and_manifest(ct_small, data_dir, tmp_path):
    seg = data_dir / "ct/totalsegmentator_example/example_seg_for_ct_sm.nii.gz"
    root = damage.msd_dataset(tmp_path / "msd", [(ct_small, seg)])
    out = tmp_path / "out"
    report = preprocess_cases(discover_cases([root]), out, CT_2MM)
    assert report.done == ["case_000"] and report.ok
    image, label = out / "case_000.nii.gz", out / "case_000_label.nii.gz"
    assert sitk.ReadImage(str(image)).GetSpacing() == (2.0, 2.0, 2.0)
    assert sitk.ReadImage(str(label)).GetSize() == sitk.ReadImage(str(image)).GetSize()
    entry = load_manifest(out)["cases"]["case_000"]
    assert entry["modality"] == "CT" and entry["preset"] == CT_2MM.to_dict()
    assert entry["sources"]["image"] == [str(root / "imagesTr/case_000.nii.gz")]
    assert entry["original"]["spacing"] == [3.0, 3.0, 3.0]
    assert entry["original"]["size"] == [122, 101, 30]
    assert entry["preprocessed"]["size"] == [183, 152, 45]  # 366 x 303 x 90 mm
    assert entry["sha256"]["image_source"] == _sha(ct_small)
    assert entry["sha256"]["label_source"] == _sha(seg)
    assert entry["sha256"]["image"] == _sha(image) and entry["sha256"]["label"] == _sha(label)
    after = entry["intensity"]["after"]
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(image)))
    assert after["min"] == 0.0 and after["max"] == pytest.approx(1.0)
    assert after["mean"] == pytest.approx(float(values.mean()), abs=1e-5)
    assert after["std"] == pytest.approx(float(values.std()), abs=1e-5)
    assert entry["intensity"]["before"]["min"] == -1100.0
    assert set(entry["labels"]) == set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(seg)))))


def test_resume_skips_unchanged_cases(ct_small, mri_tcga, tmp_path):
    out = tmp_path / "out"
    cases = discover_cases([ct_small, mri_tcga])
    first = preprocess_cases(cases, out, CT_2MM)
    assert first.done == ["example_ct_sm", "brain1_image"]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")}
    second = preprocess_cases(cases, out, CT_2MM)
    assert second.done == [] and second.skipped == ["example_ct_sm", "brain1_image"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.nii.gz")} == stamps
    other = preprocess_cases(cases[:1], out, get_preset("ct", target_spacing=(2.5, 2.5, 2.5)))
    assert other.done == ["example_ct_sm"]  # a new preset redoes the case


def test_changed_source_is_redone(ct_small, tmp_path):
    source = tmp_path / "scan.nii.gz"
    source.write_bytes(ct_small.read_bytes())
    out = tmp_path / "out"
    assert preprocess_cases(discover_cases([source]), out, CT_2MM).done == ["scan"]
    damage.cropped(ct_small, source, (100, 90, 30))
    assert preprocess_cases(discover_cases([source]), out, CT_2MM).done == ["scan"]
    assert sitk.ReadImage(str(out / "scan.nii.gz")).GetSize() == (150, 135, 45)


def test_bad_cases_fail_alone_and_leave_no_output(ct_small, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = inputs / "good.nii.gz"
    os.symlink(ct_small, good)
    cut = damage.truncated(ct_small, inputs / "cut.nii.gz")
    flat = damage.single_slice_2d(ct_small, inputs / "flat.nii.gz")
    out = tmp_path / "out"
    report = preprocess_cases(discover_cases([inputs]), out, CT_2MM)
    assert report.done == ["good"]
    reasons = {f.case_id: f.reason for f in report.failed}
    assert str(cut) in reasons["cut"] and "truncated" in reasons["cut"]
    assert str(flat) in reasons["flat"] and "2D" in reasons["flat"]
    assert sorted(p.name for p in out.iterdir()) == ["good.nii.gz", "manifest.json"]
    manifest = load_manifest(out)
    assert list(manifest["cases"]) == ["good"] and set(manifest["failed"]) == {"cut", "flat"}
    # The good scan turns bad: its old outputs must go, not linger as if still valid.
    good.unlink()
    damage.truncated(ct_small, good)
    again = preprocess_cases(discover_cases([good]), out, CT_2MM)
    assert [f.case_id for f in again.failed] == ["good"]
    assert not (out / "good.nii.gz").exists() and "good" not in load_manifest(out)["cases"]


def test_manifest_is_saved_after_every_case(ct_small, mri_tcga, tmp_path):
    out = tmp_path / "out"
    seen = []

    class Spy:
        def progress(self, step, total, message="", **extra):
            if (out / "manifest.json").exists():
                seen.append(sorted(json.loads((out / "manifest.json").read_text())["cases"]))

        def log(self, message):
            pass

    preprocess_cases(discover_cases([ct_small, mri_tcga]), out, CT_2MM, Spy())
    assert seen == [["example_ct_sm"], ["brain1_image", "example_ct_sm"]]
    assert not list(out.glob(".tmp-*"))


def test_missing_msd_file_is_reported(ct_small, data_dir, tmp_path):
    seg = data_dir / "ct/totalsegmentator_example/example_seg_for_ct_sm.nii.gz"
    root = damage.msd_dataset(tmp_path / "msd", [(ct_small, seg)], missing=["lost.nii.gz"])
    report = preprocess_cases(discover_cases([root]), tmp_path / "out", CT_2MM)
    assert report.done == ["case_000"]
    (failure,) = report.failed
    assert "lost.nii.gz" in failure.reason and "dataset.json" in failure.reason


def test_cli_json_progress_and_exit_code(ct_small, tmp_path):
    cut = damage.truncated(ct_small, tmp_path / "cut.nii.gz")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "SARCore", "preprocess", str(ct_small), str(cut),
               "--out", str(out), "--preset", "ct", "--spacing", "2", "2", "2",
               "--progress", "json"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert "done" not in kinds and kinds[-1] == "error" and kinds.count("error") == 1
    (bad,) = [e for e in events if e["event"] == "log" and e.get("level") == "error"]
    assert bad["case"] == "cut" and bad["file"] == str(cut) and "truncated" in bad["message"]
    error = events[-1]  # the batch's one last line carries the summary
    assert error["done"] == 1 and error["failed"][0]["case"] == "cut"
    assert error["exit_code"] == 1 and "truncated" in error["message"]
    assert (out / "example_ct_sm.nii.gz").is_file()


def test_cli_usage_errors_exit_2(ct_small, tmp_path, capsys):
    assert main(["preprocess", str(ct_small), "--out", str(tmp_path), "--preset", "cta",
                 "--progress", "none"]) == 2
    assert main(["preprocess", str(ct_small), "--out", str(tmp_path), "--preset", "ct",
                 "--label-map", "4-3", "--progress", "none"]) == 2


def test_label_on_another_grid_names_the_label_file(ct_small, data_dir, tmp_path):
    wrong = data_dir / "ct/lung_ct/3DCT_lung_baseline_mask.mha"  # a real label, other scan
    root = damage.msd_dataset(tmp_path / "msd", [(ct_small, wrong)])
    report = preprocess_cases(discover_cases([root]), tmp_path / "out", CT_2MM)
    (failure,) = report.failed
    assert failure.file == str(root / "labelsTr/case_000.mha")
    assert "label grid does not match its image: size" in failure.reason
    assert not list((tmp_path / "out").glob("*.nii.gz"))
