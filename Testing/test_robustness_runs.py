"""Robustness: reruns, concurrent runs and odd grids never lose data or give wrong results.

* skipping work checks the checksum of what is there (a truncated or replaced output is
  redone, a changed preprocessed volume is named, a changed cube shard is rebuilt);
* one run per output folder (a real second process is refused with the holder's PID; a
  lock left by a SIGKILLed run is taken over);
* a case's segmentation outputs form a unit;
* oblique scans come back on exactly their grid; sheared ones too, or are refused;
* ``experiment`` checks its whole file before the first stage; a ``--labels`` rule that
  matches none of a case's values stops fine-tuning.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
from inference_models import calibrated_model, crop_to_file
from robustness_faults import REPO, assert_no_traceback, errors, sar

from SARCore.cubes import CubeConfig, build_cubes
from SARCore.errors import ConfigError, DataError, LockError
from SARCore.experiment import load_experiment
from SARCore.finetune.data import find_labeled_cases, load_volumes
from SARCore.finetune.labels import parse_classes
from SARCore.inference import SegmentOptions
from SARCore.inference.batch import segment_cases
from SARCore.inference.sliding_window import MIN_WEIGHT, SIGMA_SCALE, gaussian_weights
from SARCore.io.discovery import discover_cases
from SARCore.outputs import LOCK_NAME, acquire_lock, claim_output_folder
from SARCore.preprocess import get_preset, preprocess_cases
from SARCore.preprocess.presets import Preset

CT = ("ct", "totalsegmentator_example", "example_ct.nii.gz")


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory, data_dir: Path) -> Path:
    """A real CT preprocessed at its own 3 mm (no resampling: fast)."""
    out = tmp_path_factory.mktemp("pre")
    report = preprocess_cases(discover_cases([data_dir.joinpath(*CT)]), out,
                              get_preset("ct", target_spacing=(3.0, 3.0, 3.0)))
    assert report.done == ["example_ct"]
    return out


def _copy(folder: Path, target: Path) -> Path:
    shutil.copytree(folder, target)
    return target


# -- checksum-verified skipping ----------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "replace", "delete"])
def test_rerun_redoes_a_damaged_output(tmp_path: Path, data_dir: Path, preprocessed: Path,
                                       damage: str) -> None:
    out = _copy(preprocessed, tmp_path / "pre")
    output = out / "example_ct.nii.gz"
    original = output.read_bytes()
    if damage == "truncate":
        output.write_bytes(original[: len(original) // 2])
    elif damage == "replace":
        image = sitk.ReadImage(str(output))
        sitk.WriteImage(image * 0.5, str(output))
    else:
        output.unlink()
    cases = discover_cases([data_dir.joinpath(*CT)])
    report = preprocess_cases(cases, out, get_preset("ct", target_spacing=(3.0, 3.0, 3.0)))
    assert report.done == ["example_ct"] and report.skipped == []
    assert output.read_bytes() == original


def test_rerun_skips_an_intact_output(tmp_path: Path, data_dir: Path, preprocessed: Path) -> None:
    out = _copy(preprocessed, tmp_path / "pre")
    report = preprocess_cases(discover_cases([data_dir.joinpath(*CT)]), out,
                              get_preset("ct", target_spacing=(3.0, 3.0, 3.0)))
    assert report.skipped == ["example_ct"] and report.done == []


def test_cubes_check_the_file_not_the_manifest(tmp_path: Path, preprocessed: Path) -> None:
    out = _copy(preprocessed, tmp_path / "pre")
    image = sitk.ReadImage(str(out / "example_ct.nii.gz"))
    sitk.WriteImage(image * 0.5, str(out / "example_ct.nii.gz"))  # replaced after the manifest
    with pytest.raises(DataError, match="changed since it was written") as caught:
        build_cubes(out, tmp_path / "cubes", CubeConfig(per_volume=(1, 1, 1),
                                                        cube_shape=(16, 16, 8)))
    assert caught.value.path == str(out / "example_ct.nii.gz")
    assert not (tmp_path / "cubes" / "cubes.json").exists()


def test_changed_cube_shard_is_rebuilt(tmp_path: Path, preprocessed: Path) -> None:
    config = CubeConfig(per_volume=(1, 1, 1), cube_shape=(16, 16, 8))
    first = build_cubes(preprocessed, tmp_path / "cubes", config)
    shard = tmp_path / "cubes" / first.shards[0]
    good = shard.read_bytes()
    assert build_cubes(preprocessed, tmp_path / "cubes", config).skipped
    shard.write_bytes(good[:-64] + b"\0" * 64)
    again = build_cubes(preprocessed, tmp_path / "cubes", config)
    assert not again.skipped and shard.read_bytes() == good


# -- one run per output folder -----------------------------------------------------------
def _holder(folder: Path) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import time
        from SARCore.outputs import claim_output_folder
        with claim_output_folder({str(folder)!r}):
            print("held", flush=True)
            time.sleep(120)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_second_run_into_a_held_folder_is_refused(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "out"
    holder = _holder(out)
    try:
        code, events, stderr = sar("preprocess", str(data_dir.joinpath(*CT)), "--out", str(out),
                                   "--preset", "ct")
        assert code == 1, stderr
        assert_no_traceback(stderr)
        [message] = errors(events)
        assert f"another run (PID {holder.pid}) is writing to this folder" in message
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing was done
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()


def test_lock_of_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = _holder(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    holder.stdout.close()
    assert (out / LOCK_NAME).read_text().split()[0] == str(holder.pid)  # left behind
    with claim_output_folder(out):
        with pytest.raises(LockError, match="another run"):
            acquire_lock(out)  # and now held by this process
    assert not (out / LOCK_NAME).exists()


# -- segmentation: case units and grids ---------------------------------------------------
@pytest.fixture(scope="module")
def scans(tmp_path_factory, mri_tcga: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("grids")
    crop = crop_to_file(mri_tcga, folder / "crop.nrrd", (80, 80, 6), (96, 96, 12))
    image = sitk.ReadImage(str(crop))
    angle = np.deg2rad(20)
    rotation = [np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1]
    shear = [1, 0.3, 0, 0, 1, 0, 0, 0, 1]
    files = {"crop": crop}
    for name, direction in (("oblique", rotation), ("sheared", shear)):
        changed = sitk.Image(image)
        changed.SetDirection([float(v) for v in direction])
        changed.SetOrigin((-37.1, 37.1, -39.0))
        sitk.WriteImage(changed, str(folder / f"{name}.nrrd"))
        files[name] = folder / f"{name}.nrrd"
    files["model"] = calibrated_model(folder / "m.sarmodel", [crop], preset="mri",
                                      spacing=(2.0, 2.0, 6.5))
    return files


def _same_grid(output: sitk.Image, scan: sitk.Image) -> None:
    assert output.GetSize() == scan.GetSize()
    np.testing.assert_allclose(output.GetSpacing(), scan.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(output.GetOrigin(), scan.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(output.GetDirection(), scan.GetDirection(), atol=1e-6)


def _seg_nrrd_grid(path: Path, scan: sitk.Image) -> None:
    _, header = nrrd.read(str(path))
    direction = np.array(scan.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(header["space directions"],
                               (direction * np.array(scan.GetSpacing())).T, atol=1e-5)
    np.testing.assert_allclose(header["space origin"], scan.GetOrigin(), atol=1e-5)


@pytest.mark.parametrize("name, label_format", [("oblique", "nii.gz"), ("oblique", "nrrd"),
                                                ("sheared", "nrrd")])
def test_outputs_on_exactly_the_scans_grid(tmp_path: Path, scans: dict[str, Path], name: str,
                                           label_format: str) -> None:
    report = segment_cases([scans[name]], scans["model"], tmp_path,
                           SegmentOptions(label_format=label_format, device="cpu"))
    assert report.ok, report.failed
    [output] = report.outputs
    scan = sitk.ReadImage(str(scans[name]))
    _same_grid(sitk.ReadImage(output["label"]), scan)
    _seg_nrrd_grid(Path(output["segmentation"]), scan)


def test_sheared_scan_into_nifti_is_refused(tmp_path: Path, scans: dict[str, Path]) -> None:
    report = segment_cases([scans["sheared"], scans["crop"]], scans["model"], tmp_path,
                           SegmentOptions(device="cpu"))
    [failed] = report.failed
    assert failed["case"] == "sheared" and "not orthogonal" in failed["error"]
    assert failed["file"] == str(scans["sheared"]) and "--label-format nrrd" in failed["error"]
    assert [o["case"] for o in report.outputs] == ["crop"]  # the batch went on
    assert not list(tmp_path.glob("sheared*"))


def test_half_written_case_is_completed_on_rerun(tmp_path: Path, scans: dict[str, Path]) -> None:
    options = SegmentOptions(device="cpu")
    [first] = segment_cases([scans["crop"]], scans["model"], tmp_path, options).outputs
    label = Path(first["label"]).read_bytes()
    Path(first["segmentation"]).unlink()  # as if killed between the two files
    again = segment_cases([scans["crop"]], scans["model"], tmp_path, options)
    assert again.ok and Path(again.outputs[0]["segmentation"]).is_file()
    assert Path(again.outputs[0]["label"]).read_bytes() == label
    kept = segment_cases([scans["crop"]], scans["model"], tmp_path, options)
    assert [s["case"] for s in kept.skipped] == ["crop"] and not kept.outputs  # a whole case


# -- sliding-window weights on a non-cubic window ----------------------------------------
def test_gaussian_weights_follow_each_axis_own_side() -> None:
    """sigma = side / 8 per axis: a sigma taken from another axis would change the profile."""
    window = (8, 16, 32)
    weights = gaussian_weights(window)
    assert weights.shape == window
    for axis, side in enumerate(window):
        index = [s // 2 for s in window]  # a peak voxel of every other axis (even sides)
        index[axis] = slice(None)
        profile = weights[tuple(index)].astype(np.float64)
        position = np.arange(side) - (side - 1) / 2.0
        expected = np.exp(-0.5 * (position / (side * SIGMA_SCALE)) ** 2)
        np.testing.assert_allclose(profile, np.maximum(expected / expected.max(), MIN_WEIGHT),
                                   rtol=1e-5)


# -- experiment files and label rules ----------------------------------------------------
@pytest.mark.parametrize("section, text, message", [
    ("segmentation", "segmentation:\n  overlapp: 0.5\n", "overlapp"),
    ("segmentation", "segmentation:\n  overlap: 1.5\n", "overlap must be in"),
    ("cubes", "pretraining:\n  data: [{path: ct, preset: ct}]\n  cubes: {per_volume: [1, 1]}\n",
     "per_volume"),
    ("options", "pretraining:\n  data: [{path: ct, preset: ct}]\n  options: {batch_size: 0}\n",
     "batch_size"),
    ("evaluation", "evaluation:\n  size_treshold: [1]\n", "size_treshold"),
    ("spacing", "pretraining:\n  data: [{path: ct, preset: ct}]\n  spacing: [1, .nan, 1]\n",
     "spacing"),
])
def test_experiment_file_is_checked_whole(tmp_path: Path, section: str, text: str,
                                          message: str) -> None:
    base = ("name: bad\nfinetuning:\n  data: brats2015\n  inits: [scratch]\n")
    if "pretraining" not in text:
        base += "pretraining:\n  methods: []\n"
    else:
        text = text.replace("pretraining:\n", "pretraining:\n  methods: [sar]\n")
        base = base.replace("inits: [scratch]", "inits: [scratch, sar]")
    path = tmp_path / f"{section}.yaml"
    path.write_text(base + text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_experiment(path)
    assert caught.value.path == str(path)


def test_experiment_cli_stops_before_any_stage(tmp_path: Path, capsys) -> None:
    from SARCore.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\npretraining:\n  methods: []\nfinetuning:\n  data: brats2015\n"
                    "segmentation:\n  window: [10, 10, 10]\n")
    out = tmp_path / "out"
    assert main(["experiment", str(path), "--out", str(out), "--progress", "json"]) == 2
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "window must be 3 multiples of 8" in errors(events)[0]
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]


def _csv(tmp_path: Path, data_dir: Path) -> Path:
    """A one-case CSV beside its files (paths inside the CSV's folder, as the rule asks)."""
    for name in ("brain1_image.nrrd", "brain1_label.nrrd"):
        shutil.copy(data_dir / "tcga_gbm_t1gd" / name, tmp_path / name)
    (tmp_path / "cases.csv").write_text(
        "id,image,label\nbrain1,brain1_image.nrrd,brain1_label.nrrd\n")
    return tmp_path / "cases.csv"


def test_label_rule_matching_nothing_stops(tmp_path: Path, data_dir: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    cases = find_labeled_cases(_csv(tmp_path, data_dir))
    classes = parse_classes("tumor:2-4")
    preset = Preset.from_dict({**get_preset("mri", target_spacing=(3.0, 3.0, 6.5)).to_dict(),
                               "min_shape": (1, 1, 1)})  # as fine-tuning sets it
    with pytest.raises(DataError, match=r"case 'brain1' has label values \[1\] but the rule "
                                        r"'tumor:2-4' matches none") as caught:
        load_volumes(cases, preset, classes, tmp_path / "cache")
    assert caught.value.path.endswith("brain1_label.nrrd")
    assert "--allow-empty-labels" in caught.value.hint
    with caplog.at_level(logging.INFO, logger="SARCore.finetune.labels"):
        volumes = load_volumes(cases, preset, classes, tmp_path / "cache", allow_empty=True)
    assert not volumes["brain1"].label.any()  # allowed explicitly: a tumor-free case
    assert "brain1: label values [1]" in caplog.text  # the values are reported per case


def test_memory_advice_leaves_out_what_is_in_use(scans: dict[str, Path]) -> None:
    from SARCore.inference import Segmenter, load_segmentation_model
    from SARCore.inference.batch import memory_advice

    model = load_segmentation_model(scans["model"])
    used = Segmenter(model, SegmentOptions(device="cpu", fast=True, batch_size=1))
    assert memory_advice(used) == "try a smaller --window"
    plain = Segmenter(model, SegmentOptions(device="cpu"))
    assert memory_advice(plain) == "try --fast, a smaller --window or --batch-size 1"


def test_failed_run_leaves_no_empty_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with claim_output_folder(out):
            raise RuntimeError("usage error before any output")
    assert not out.exists()
    (tmp_path / "kept").mkdir()
    with claim_output_folder(tmp_path / "kept"):
        pass
    assert (tmp_path / "kept").is_dir()  # a folder the user made is never removed
