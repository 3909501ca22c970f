"""Robustness of ``segment`` batches on real scans: a file name ITK cannot take fails alone
(ITK would abort the whole process), and a finished case whose outputs were edited since
they were written is refused, not skipped as done."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import SimpleITK as sitk
from inference_models import calibrated_model, crop_to_file
from robustness_faults import assert_no_traceback, errors, sar

from SARCore.inference.batch import output_paths, segment_cases
from SARCore.inference.segment import SegmentOptions


@pytest.fixture(scope="module")
def scan_and_model(tmp_path_factory: pytest.TempPathFactory, brats_flair: Path
                   ) -> tuple[Path, Path]:
    """A real 64 x 64 x 32 FLAIR block and a random model calibrated on it."""
    folder = tmp_path_factory.mktemp("flair")
    crop = crop_to_file(brats_flair, folder / "pat1_flair.nii.gz", (48, 80, 40), (64, 64, 32))
    return crop, calibrated_model(folder / "flair.sarmodel", [crop])


def test_non_utf8_name_fails_alone_in_a_segment_batch(tmp_path: Path,
                                                      scan_and_model: tuple[Path, Path]) -> None:
    crop, model = scan_and_model
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_good.nii.gz").symlink_to(crop)
    os.symlink(crop, os.path.join(os.fsencode(folder), b"b_bad\xff.nii.gz"))
    out = tmp_path / "seg"
    code, events, stderr = sar("segment", str(folder), "--model", str(model), "--out",
                               str(out), "--device", "cpu")
    assert code == 1, stderr[-2000:]  # not 134: ITK never saw the name
    assert_no_traceback(stderr)
    case_errors = [e for e in events if e["event"] == "log" and e.get("level") == "error"]
    assert len(case_errors) == 1 and "not valid UTF-8" in case_errors[0]["message"]
    assert "\\xff" in case_errors[0]["message"]
    [final] = errors(events)
    assert "1 case(s) failed" in final
    assert (out / "a_good_label.nii.gz").is_file() and (out / "a_good.seg.nrrd").is_file()


@pytest.mark.parametrize("damage", ["truncate", "replace"])
def test_edited_output_is_refused_not_skipped(tmp_path: Path, damage: str,
                                              scan_and_model: tuple[Path, Path]) -> None:
    crop, model = scan_and_model
    options = SegmentOptions(device="cpu", fast=True)
    assert segment_cases([crop], model, tmp_path, options).ok
    label, _ = output_paths(tmp_path, "pat1_flair")
    data = label.read_bytes()
    if damage == "truncate":
        edited = data[: len(data) // 2]
    else:  # a valid label map, but not the one this model wrote
        image = sitk.ReadImage(str(label)) * 0
        sitk.WriteImage(image, str(tmp_path / "other.nii.gz"))
        edited = (tmp_path / "other.nii.gz").read_bytes()
    label.write_bytes(edited)

    report = segment_cases([crop], model, tmp_path, options)
    [failed] = report.failed
    assert "changed since it was written" in failed["error"] and failed["file"] == str(label)
    assert not report.skipped and label.read_bytes() == edited  # not trusted, not overwritten
    redone = segment_cases([crop], model, tmp_path,
                           SegmentOptions(device="cpu", fast=True, overwrite=True))
    assert redone.ok and label.read_bytes() != edited
    assert sitk.ReadImage(str(label)).GetSize() == (64, 64, 32)
