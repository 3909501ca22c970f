"""Segmentation end to end, headless: volume node -> real engine process -> segmentation
node, compared with what the engine writes when run directly on the same scan; and the
batch script on a folder with a bad file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from conftest_slicer import read_on_node, segment_voxels

from SARSegmentationLib import MrmlIO
from SARSegmentationLib.Engine import engineEnvironment
from SARSegmentationLib.Logic import SARLogic
from SARSegmentationLib.ModelRegistry import readHeader
from SARSegmentationLib.SegmentationLogic import SegmentationExistsError, segmentInfo

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "SARSegmentation" / "Scripts" / "sar_batch_segment.py"


def _volume_from_numpy(scene, path: Path):
    """A volume node made from a numpy array and the scan's geometry (not from the file)."""
    image = sitk.ReadImage(str(path))
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    direction = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    matrix = np.eye(4)
    matrix[:3, :3] = lps_to_ras @ direction
    matrix[:3, 3] = lps_to_ras @ np.array(image.GetOrigin())
    slicer.mrmlScene = scene
    return slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(image), ijkToRAS=matrix,
                                          name="flair from numpy")


def test_segmentation_node_equals_the_engines_direct_output(headless_scene, tiny_model,
                                                            brats2015_cases, tmp_path):
    scan = brats2015_cases[3] / "Flair_subtrMeanDivStd.nii.gz"
    volume = _volume_from_numpy(headless_scene, scan)
    node = SARLogic(headless_scene).process(volume, tiny_model, device="cpu")

    direct = tmp_path / "direct"
    done = subprocess.run([sys.executable, "-m", "SARCore", "segment", str(scan), "--model",
                           str(tiny_model), "--out", str(direct), "--device", "cpu",
                           "--progress", "none"], capture_output=True, text=True,
                          env=engineEnvironment(), cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    case = "Flair_subtrMeanDivStd"
    engine_label = read_on_node(direct / f"{case}_label.nii.gz", volume)
    engine_seg = MrmlIO.loadSegmentation(headless_scene, direct / f"{case}.seg.nrrd")

    header = readHeader(tiny_model)
    classes = [(c["name"], c["label"]) for c in header["classes"]]
    ours, theirs = segmentInfo(node), segmentInfo(engine_seg)
    assert [(s["name"], s["label"]) for s in ours] == classes
    assert [s["name"] for s in theirs] == [name for name, _ in classes]
    assert np.allclose([s["color"] for s in ours], [c["color"] for c in header["classes"]])
    assert np.allclose([s["color"] for s in ours], [s["color"] for s in theirs], atol=1e-6)
    reference = node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole())
    assert reference is None or reference.GetID() == volume.GetID()
    for segment, engine_segment in zip(ours, theirs):
        voxels = segment_voxels(headless_scene, node, segment["id"], volume)
        assert 0.01 < voxels.mean() < 0.5, "the test model should mark part of the scan"
        assert np.array_equal(voxels, engine_label == segment["label"])
        assert np.array_equal(voxels, segment_voxels(headless_scene, engine_seg,
                                                      engine_segment["id"], volume))
    assert node.GetSegmentation().ContainsRepresentation("Closed surface")

    saved = MrmlIO.saveNode(node, tmp_path / "result.seg.nrrd")
    again = MrmlIO.loadSegmentation(headless_scene, saved)
    assert [s["name"] for s in segmentInfo(again)] == [s["name"] for s in ours]
    assert np.array_equal(segment_voxels(headless_scene, again,
                                          segmentInfo(again)[0]["id"], volume),
                          engine_label == classes[0][1])


def test_existing_segmentation_is_kept_unless_overwrite(headless_scene, tiny_model, mri_tcga):
    volume = MrmlIO.loadVolume(headless_scene, mri_tcga)
    mine = headless_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my work")
    mine.GetSegmentation().AddEmptySegment("", "hand drawn", [0, 0, 1])
    logic = SARLogic(headless_scene)
    with pytest.raises(SegmentationExistsError, match="my work"):
        logic.process(volume, tiny_model, outputSegmentation=mine, device="cpu")
    assert [s["name"] for s in segmentInfo(mine)] == ["hand drawn"]
    node = logic.process(volume, tiny_model, outputSegmentation=mine, device="cpu",
                         fast=True, overwrite=True, show3D=False)
    assert node is mine and [s["name"] for s in segmentInfo(mine)] == ["tumor"]


def test_batch_script_segments_a_folder_and_reports_the_bad_file(tiny_model, mri_tcga,
                                                                 tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("brain1_image.nrrd", "brain2_image.nrrd", "brain1_label.nrrd"):
        shutil.copy(mri_tcga.with_name(name), inputs / name)
    (inputs / "broken.nii.gz").write_bytes(b"truncated download")
    out = tmp_path / "out"
    command = [sys.executable, str(SCRIPT), "--input", str(inputs), "--model",
               str(tiny_model), "--out", str(out), "--device", "cpu", "--fast"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env=engineEnvironment())
    assert run.returncode == 1, run.stderr
    assert "2 segmented, 0 skipped (already done), 1 failed" in run.stdout
    assert "broken.nii.gz" in run.stderr
    written = sorted(p.name for p in out.glob("*.seg.nrrd"))  # the label map is no scan
    assert written == ["brain1_image.seg.nrrd", "brain2_image.seg.nrrd"]
    stamp = (out / written[0]).stat().st_mtime_ns
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                           env=engineEnvironment())
    assert "0 segmented, 2 skipped (already done), 1 failed" in again.stdout, again.stderr
    assert (out / written[0]).stat().st_mtime_ns == stamp
    from SARSegmentationLib.Headless import makeScene

    scene = makeScene(tmp_path / "home")
    for name in written:
        assert [s["name"] for s in segmentInfo(MrmlIO.loadSegmentation(scene, out / name))] \
            == ["tumor"]


def test_batch_script_segments_case_folders_for_a_multi_sequence_model(
        brats2015_cases, tmp_path) -> None:
    """A FLAIR+T1c model: one result per case folder, its files matched by sequence name;
    a case lacking T1c is reported and the others go on; a rerun skips both."""
    from inference_models import calibrated_model

    model = calibrated_model(tmp_path / "two.sarmodel", in_channels=2,
                             sequences=("flair", "t1c"), spacing=(4.0, 4.0, 4.0))
    inputs = tmp_path / "cases"
    for case in brats2015_cases[:3]:
        shutil.copytree(case, inputs / case.name)
    lacking = inputs / brats2015_cases[2].name
    (lacking / "T1c_subtrMeanDivStd.nii.gz").unlink()
    out = tmp_path / "out"
    command = [sys.executable, str(SCRIPT), "--input", str(inputs), "--model", str(model),
               "--out", str(out), "--device", "cpu", "--fast"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env=engineEnvironment())
    assert run.returncode == 1, run.stderr
    assert "2 segmented, 0 skipped (already done), 1 failed" in run.stdout, run.stderr
    assert lacking.name in run.stderr and "no t1c" in run.stderr
    written = sorted(p.name for p in out.glob("*.seg.nrrd"))
    assert written == [f"{c.name}.seg.nrrd" for c in brats2015_cases[:2]]
    import json

    from SARCore.io.checksum import sha256_file

    first = brats2015_cases[0]
    record = json.loads((out / f"{first.name}.sar.json").read_text())
    assert record["input_sha256"] == [sha256_file(first / "Flair_subtrMeanDivStd.nii.gz"),
                                      sha256_file(first / "T1c_subtrMeanDivStd.nii.gz")]
    from SARSegmentationLib.Headless import makeScene

    scene = makeScene(tmp_path / "home")
    flair = MrmlIO.loadVolume(scene, first / "Flair_subtrMeanDivStd.nii.gz")
    result = MrmlIO.loadSegmentation(scene, out / written[0])
    voxels = segment_voxels(scene, result, segmentInfo(result)[0]["id"], flair)
    assert voxels.shape == slicer.util.arrayFromVolume(flair).shape  # on the FLAIR's grid
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                           env=engineEnvironment())
    assert "0 segmented, 2 skipped (already done), 1 failed" in again.stdout, again.stderr


def test_batch_script_usage_errors_exit_2(tmp_path) -> None:
    missing = subprocess.run([sys.executable, str(SCRIPT), "--input", str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--model" in missing.stderr
    empty = subprocess.run([sys.executable, str(SCRIPT), "--input", str(tmp_path / "none"),
                            "--model", "m.sarmodel", "--output", str(tmp_path / "o")],
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2 and "input folder not found" in empty.stderr
