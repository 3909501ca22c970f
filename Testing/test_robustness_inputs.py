"""Robustness: bad inputs get one clear error naming the file, never a wrong result.

Every :class:`DataError` path of reading and discovery is exercised on files derived from
the real scans in ``../shared/data``: damaged NIfTI headers, negative labels, folders
without DICOM, constant regions, hand-edited manifests, hostile ``dataset.json`` files
and file names ITK cannot take.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from robustness_faults import assert_no_traceback, errors, sar

from SARCore.cubes import build_cubes
from SARCore.errors import ConfigError, DataError, WriteError
from SARCore.io.discovery import discover_cases
from SARCore.io.readers import read_image, read_label
from SARCore.preprocess import get_preset, preprocess_image
from SARCore.preprocess.manifest import load_manifest

CT_SMALL = ("ct", "totalsegmentator_example", "example_ct_sm.nii.gz")


def _raw_nifti(data_dir: Path) -> bytearray:
    return bytearray(gzip.open(data_dir.joinpath(*CT_SMALL)).read())


def _with(data: bytearray, offset: int, fmt: str, value, path: Path) -> Path:
    data = bytearray(data)
    data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))
    return path


# -- NIfTI headers -----------------------------------------------------------------------
@pytest.mark.parametrize("axis", [1, 2, 3])
def test_zero_pixdim_is_an_error_not_1mm(tmp_path: Path, data_dir: Path, axis: int) -> None:
    bad = _with(_raw_nifti(data_dir), 76 + 4 * axis, "<f", 0.0, tmp_path / "zero.nii")
    with pytest.raises(DataError, match=r"invalid voxel spacing.*pixdim") as caught:
        read_image(bad)
    assert caught.value.path == str(bad)


def test_nan_pixdim_is_an_error(tmp_path: Path, data_dir: Path) -> None:
    bad = _with(_raw_nifti(data_dir), 80, "<f", float("nan"), tmp_path / "nan.nii")
    with pytest.raises(DataError, match="invalid voxel spacing"):
        read_image(bad)


def test_invalid_dim_is_an_error(tmp_path: Path, data_dir: Path) -> None:
    bad = _with(_raw_nifti(data_dir), 40, "<h", 9, tmp_path / "dim.nii")
    with pytest.raises(DataError, match=r"cannot read image|invalid NIfTI header"):
        read_image(bad)


def test_incomplete_header_is_an_error(tmp_path: Path, data_dir: Path) -> None:
    bad = tmp_path / "head.nii"
    bad.write_bytes(bytes(_raw_nifti(data_dir)[:200]))
    with pytest.raises(DataError) as caught:
        read_image(bad)
    assert caught.value.path == str(bad)


def test_valid_header_still_reads(data_dir: Path) -> None:
    assert read_image(data_dir.joinpath(*CT_SMALL)).GetSpacing() == (3.0, 3.0, 3.0)


# -- labels and regions ------------------------------------------------------------------
def test_negative_label_values(tmp_path: Path, data_dir: Path) -> None:
    label = sitk.ReadImage(str(data_dir / "tcga_gbm_t1gd" / "brain1_label.nrrd"))
    values = sitk.GetArrayFromImage(label).astype(np.int16)
    values[values > 0] = -1
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(label)
    sitk.WriteImage(image, str(tmp_path / "neg.nrrd"))
    with pytest.raises(DataError, match="negative values"):
        read_label(tmp_path / "neg.nrrd")


def test_folder_without_dicom_series(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no DICOM series"):
        read_image(tmp_path)


def test_constant_scan(tmp_path: Path, mri_tcga: Path) -> None:
    image = sitk.ReadImage(str(mri_tcga)) * 0 + 7
    sitk.WriteImage(image, str(tmp_path / "flat.nrrd"))
    with pytest.raises(DataError, match="constant volume"):
        read_image(tmp_path / "flat.nrrd")


@pytest.mark.parametrize("inside", ["empty", "constant"])
def test_empty_or_constant_brain_region(brats_flair: Path, inside: str) -> None:
    """z-score inside the non-zero region: no region, or one value, cannot be normalised."""
    image = sitk.RegionOfInterest(sitk.ReadImage(str(brats_flair)), [64, 64, 32], [88, 88, 60])
    values = sitk.GetArrayFromImage(image)
    values[...] = 0.0
    if inside == "constant":
        values[10:20, 10:40, 10:40] = 3.0
    else:
        values[0, 0, 0] = -0.0  # all zero: no brain at all
    changed = sitk.GetImageFromArray(values)
    changed.CopyInformation(image)
    with pytest.raises(DataError):
        preprocess_image(changed, get_preset("brats"))


def test_absurd_spacing_is_named_not_out_of_memory(tmp_path: Path, mri_tcga: Path) -> None:
    image = sitk.ReadImage(str(mri_tcga))
    image.SetSpacing((1e6, 1e6, 1e6))
    with pytest.raises(DataError, match="implausible"):
        preprocess_image(image, get_preset("mri"))


# -- manifests ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("{not json", "unreadable manifest"),
    ('{"format": "something-else"}', "not a SARCore preprocessing manifest"),
    ('{"format": "sar-preprocessed", "format_version": 99}', "newer than this"),
    ('{"format": "sar-preprocessed", "format_version": "1"}', "not a whole number"),
    ('{"format": "sar-preprocessed", "format_version": 1, "cases": []}', "must map case"),
])
def test_bad_manifests(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        load_manifest(tmp_path)
    assert caught.value.path == str(tmp_path / "manifest.json")


def test_hand_edited_manifest_entry_is_named(tmp_path: Path) -> None:
    manifest = {"format": "sar-preprocessed", "format_version": 1,
                "cases": {"a": {"case_id": "a", "status": "done"}}, "failed": {}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="lacks intensity.after.min"):
        build_cubes(tmp_path, tmp_path / "cubes")


# -- dataset.json ------------------------------------------------------------------------
def _msd(folder: Path, training, data_dir: Path) -> Path:
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    target = folder / "imagesTr" / "ct.nii.gz"
    if not target.exists():
        target.symlink_to(data_dir.joinpath(*CT_SMALL))
    (folder / "dataset.json").write_text(json.dumps({"modality": {"0": "CT"},
                                                     "training": training}))
    return folder


@pytest.mark.parametrize("training, message", [
    ({"image": "imagesTr/ct.nii.gz"}, "must be a list"),
    ("imagesTr/ct.nii.gz", "must be a list"),
    ([{"label": "x.nii.gz"}], "bad training entry"),
    ([{"image": 5}], "bad training entry"),
    ([{"image": "imagesTr/ct.nii.gz", "label": 3}], "must be a path"),
])
def test_bad_training_entries(tmp_path: Path, data_dir: Path, training, message: str) -> None:
    folder = _msd(tmp_path / "msd", training, data_dir)
    with pytest.raises(DataError, match=message) as caught:
        discover_cases([folder])
    assert caught.value.path == str(folder / "dataset.json")


def test_dataset_json_that_is_not_an_object(tmp_path: Path, data_dir: Path) -> None:
    folder = _msd(tmp_path / "msd", [], data_dir)
    (folder / "dataset.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="must be a list of entries"):
        discover_cases([folder])


@pytest.mark.parametrize("entry", ["../outside.nii.gz", "/etc/passwd.nii.gz",
                                   "imagesTr/../../outside.nii.gz"])
def test_dataset_paths_stay_inside(tmp_path: Path, data_dir: Path, entry: str) -> None:
    folder = _msd(tmp_path / "msd", [{"image": entry}], data_dir)
    with pytest.raises(DataError, match="outside the folder of dataset.json"):
        discover_cases([folder])


def test_outside_paths_allowed_explicitly(tmp_path: Path, data_dir: Path) -> None:
    outside = str(data_dir.joinpath(*CT_SMALL))
    folder = _msd(tmp_path / "msd", [{"image": outside}, {"image": "imagesTr/../imagesTr/ct.nii.gz"}],
                  data_dir)
    with pytest.raises(DataError):
        discover_cases([folder])
    cases = discover_cases([folder], allow_outside=True)
    assert [c.images[0] for c in cases] == [Path(outside), folder / "imagesTr/../imagesTr/ct.nii.gz"]
    assert all(c.problem is None for c in cases)


# -- names ITK cannot take, options and output folders (real processes) -------------------
def test_non_utf8_file_name_fails_alone(tmp_path: Path, data_dir: Path) -> None:
    """ITK aborts the process on such a name; the batch must go on with the others."""
    folder = tmp_path / "in"
    folder.mkdir()
    source = data_dir / "ct" / "totalsegmentator_example" / "example_ct.nii.gz"
    (folder / "a_good.nii.gz").symlink_to(source)
    os.symlink(source, os.path.join(os.fsencode(folder), b"b_bad\xff.nii.gz"))
    out = tmp_path / "out"
    code, events, stderr = sar("preprocess", str(folder), "--out", str(out), "--preset", "ct",
                               "--spacing", "3", "3", "3")
    assert code == 1, stderr
    assert_no_traceback(stderr)
    case_errors = [e for e in events if e["event"] == "log" and e.get("level") == "error"]
    assert len(case_errors) == 1 and "not valid UTF-8" in case_errors[0]["message"]
    assert "\\xff" in case_errors[0]["message"]
    assert (out / "a_good.nii.gz").is_file()


def test_nan_spacing_option(tmp_path: Path, mri_tcga: Path) -> None:
    code, events, stderr = sar("preprocess", str(mri_tcga), "--out", str(tmp_path / "o"),
                               "--preset", "mri", "--spacing", "nan", "1", "1")
    assert code == 2 and "target_spacing must be a positive number" in errors(events)[0]
    assert_no_traceback(stderr)


@pytest.mark.parametrize("where", ["file", "below_a_file"])
def test_output_folder_that_cannot_be_one(tmp_path: Path, mri_tcga: Path, where: str) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker if where == "file" else blocker / "sub"
    code, events, stderr = sar("preprocess", str(mri_tcga), "--out", str(out), "--preset",
                               "mri")
    assert code == 1, stderr
    assert_no_traceback(stderr)
    [message] = errors(events)
    assert str(blocker) in message and ("is a file" in message or "not writable" in message)
    assert blocker.read_text() == "x"


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process may not write in: a read-only folder for a normal user; for
    root (who ignores file modes, as in CI) a path under sysfs, where even root may not
    create anything."""
    import os

    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder / "out"
    return Path("/sys/sar-unwritable-test")


def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path: Path,
                                                                mri_tcga: Path) -> None:
    out = _unwritable_folder(tmp_path)
    assert not out.exists()
    code, events, stderr = sar("preprocess", str(mri_tcga), "--out", str(out), "--preset",
                               "mri")
    assert code == 1, stderr
    assert_no_traceback(stderr)
    [message] = errors(events)
    assert "output folder is not writable" in message and str(out) in message
    assert not [e for e in events if e["event"] == "progress"]  # refused before any work
    assert not out.exists()


def test_traceback_only_with_debug_logging(tmp_path: Path, mri_tcga: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, stderr = sar("preprocess", str(mri_tcga), "--out", str(blocker), "--preset",
                          "mri", "--log-level", "DEBUG")
    assert code == 1 and "Traceback" in stderr and "WriteError" in stderr


def test_check_writable_folder_names_the_folder(tmp_path: Path) -> None:
    from SARCore.outputs import check_writable_folder

    (tmp_path / "f").write_text("x")
    with pytest.raises(WriteError, match="output path is a file"):
        check_writable_folder(tmp_path / "f")
    assert check_writable_folder(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert list((tmp_path / "new" / "deep").iterdir()) == []


def test_config_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        get_preset("mri", target_spacing=(float("inf"), 1.0, 1.0))


def test_preprocess_refuses_outside_paths_unless_allowed(tmp_path: Path, data_dir: Path,
                                                         capsys) -> None:
    from SARCore.cli import main

    ct = data_dir / "ct" / "totalsegmentator_example" / "example_ct.nii.gz"
    folder = _msd(tmp_path / "msd", [{"image": str(ct)}], data_dir)
    args = ["preprocess", str(folder), "--out", str(tmp_path / "out"), "--preset", "ct",
            "--spacing", "3", "3", "3", "--progress", "json"]
    assert main(args) == 1
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "outside the folder of dataset.json" in errors(events)[0]
    assert main([*args, "--allow-outside-paths"]) == 0
    assert (tmp_path / "out" / "example_ct.nii.gz").is_file()
