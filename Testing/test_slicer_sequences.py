"""Multi-sequence models in the panel's logic, on real MRML volumes from ``brats_4seq``.

One slot per sequence the model's header names, each with a best-guess volume (by name)
that the user can override; a sequence without a volume or one volume in two slots is a
clear error; sequences on another grid are resampled onto the first sequence's grid, and
the segmentation comes back on that grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk
from conftest_slicer import node_grid, read_on_node, segment_voxels
from inference_models import calibrated_model

from SARCore.errors import DataError
from SARSegmentationLib import MrmlIO
from SARSegmentationLib.Logic import SARLogic
from SARSegmentationLib.SegmentationLogic import segmentInfo
from SARSegmentationLib.SequenceInputs import sceneVolumes

FOUR = ("flair", "t1", "t1c", "t2")
FILES = {"flair": "fla", "t1": "t1", "t1c": "t1c", "t2": "t2"}  # TCGA-DU-7294_<x>_bet


@pytest.fixture(scope="module")
def four_sequence_model(tmp_path_factory) -> Path:
    """A real (random, width/8) model file whose header asks for all four sequences."""
    return calibrated_model(tmp_path_factory.mktemp("model4") / "four.sarmodel",
                            in_channels=4, sequences=FOUR, spacing=(4.0, 4.0, 4.0))


@pytest.fixture()
def tcga(headless_scene, data_dir):
    """The four sequences of TCGA-DU-7294 as volume nodes, in a shuffled scene order."""
    folder = data_dir / "brats_4seq" / "TCGA-DU-7294"
    return {seq: MrmlIO.loadVolume(headless_scene, folder / f"TCGA-DU-7294_{FILES[seq]}_bet.nii.gz")
            for seq in ("t2", "t1c", "flair", "t1")}


def _params(scene, model: Path, volume):
    logic = SARLogic(scene)
    params = logic.getParameters()
    params.modelPath, params.inputVolume = str(model), volume
    return logic, params


def test_slots_guess_each_sequence_by_name(headless_scene, tcga, four_sequence_model) -> None:
    logic, params = _params(headless_scene, four_sequence_model, tcga["t1c"])
    slots = logic.sequenceSlots(params)
    assert [s.sequence for s in slots] == list(FOUR)  # the header's channel order
    assert [s.volume for s in slots] == [tcga[s] for s in FOUR]
    assert not any(s.chosen for s in slots)


def test_slots_guess_from_brats_2023_names_and_prefer_the_input_case(
        headless_scene, data_dir, tcga, four_sequence_model) -> None:
    """t2f/t1n/t1c/t2w names; with two cases loaded, the input volume's name wins its slot
    and the rest come in scene order (the user then fixes what the guess got wrong)."""
    folder = data_dir / "brats_4seq" / "BraTS-GLI-00001-000"
    gli = {seq: MrmlIO.loadVolume(headless_scene, folder / f"BraTS-GLI-00001-000-{tag}.nii.gz")
           for seq, tag in (("flair", "t2f"), ("t1", "t1n"), ("t1c", "t1c"), ("t2", "t2w"))}
    logic, params = _params(headless_scene, four_sequence_model, gli["t1c"])
    slots = logic.sequenceSlots(params)
    assert slots[2].volume is gli["t1c"]  # the input volume, before TCGA's t1c
    assert [s.volume for s in slots] == [tcga["flair"], tcga["t1"], gli["t1c"], tcga["t2"]]


def test_user_override_is_kept_and_used_by_the_job(headless_scene, tcga,
                                                   four_sequence_model) -> None:
    logic, params = _params(headless_scene, four_sequence_model, tcga["flair"])
    # a volume whose name says nothing about its sequence: only the user can place it
    renamed = MrmlIO.loadVolume(headless_scene, Path(tcga["t2"].GetStorageNode().GetFileName()),
                                name="scan 7")
    logic.chooseSequenceVolume(params, "t2", renamed)
    slots = logic.sequenceSlots(params)
    assert slots[3].volume is renamed and slots[3].chosen
    assert [s.chosen for s in slots] == [False, False, False, True]
    job = logic.prepareSegment(params)
    try:
        written = sitk.ReadImage(str(job.cases[0].inputFile / "t2.nrrd"))
        assert np.array_equal(sitk.GetArrayFromImage(written),
                              slicer.util.arrayFromVolume(renamed))
        assert job.cases[0].volume is tcga["flair"]
    finally:
        logic.discardSegment(job)
    assert not job.workDir.exists()
    logic.chooseSequenceVolume(params, "t2", None)  # back to the guess
    assert logic.sequenceSlots(params)[3].volume is tcga["t2"]
    headless_scene.RemoveNode(renamed)  # a deleted choice falls back to the guess too


def test_a_volume_loaded_later_fills_its_empty_slot(headless_scene, tcga, data_dir,
                                                   four_sequence_model) -> None:
    """The panel's picker re-guesses on the scene's NodeAdded/NodeRemoved events: the
    events fire for a loaded volume, and the next guess places it by its name."""
    path = Path(tcga["t2"].GetStorageNode().GetFileName())
    headless_scene.RemoveNode(tcga.pop("t2"))
    logic, params = _params(headless_scene, four_sequence_model, tcga["flair"])
    assert logic.sequenceSlots(params)[3].volume is None
    events: list[str] = []  # vtk names MRML's own events "NoEvent": record our labels
    tags = [headless_scene.AddObserver(event, lambda *_, label=label: events.append(label))
            for event, label in ((headless_scene.NodeAddedEvent, "added"),
                                 (headless_scene.NodeRemovedEvent, "removed"))]
    try:
        t2 = MrmlIO.loadVolume(headless_scene, path)
        assert "added" in events and "removed" not in events
        assert logic.sequenceSlots(params)[3].volume is t2
        headless_scene.RemoveNode(t2)
        assert "removed" in events
        assert logic.sequenceSlots(params)[3].volume is None
    finally:
        for tag in tags:
            headless_scene.RemoveObserver(tag)


def test_missing_sequence_is_a_clear_message(headless_scene, tcga,
                                             four_sequence_model) -> None:
    headless_scene.RemoveNode(tcga.pop("t1"))
    logic, params = _params(headless_scene, four_sequence_model, tcga["flair"])
    slots = logic.sequenceSlots(params)
    assert slots[1].sequence == "t1" and slots[1].volume is None
    with pytest.raises(DataError) as caught:
        logic.prepareSegment(params)
    message = str(caught.value)
    assert "no volume for the model's t1 sequence" in message
    assert "TCGA-DU-7294_fla_bet" in message and "choose one for each sequence" in message


def test_same_volume_in_two_slots_is_a_clear_message(headless_scene, tcga,
                                                     four_sequence_model) -> None:
    logic, params = _params(headless_scene, four_sequence_model, tcga["flair"])
    logic.chooseSequenceVolume(params, "t2", tcga["t1c"])
    with pytest.raises(DataError) as caught:
        logic.prepareSegment(params)
    message = str(caught.value)
    assert "the same volume is chosen for the t1c and t2 sequences" in message
    assert "TCGA-DU-7294_t1c_bet" in message and "its own volume" in message


def test_input_volume_without_a_sequence_name_fills_the_empty_slot(
        headless_scene, tcga, four_sequence_model) -> None:
    headless_scene.RemoveNode(tcga.pop("flair"))
    logic, params = _params(headless_scene, four_sequence_model, tcga["t1"])
    plain = MrmlIO.loadVolume(headless_scene, Path(tcga["t2"].GetStorageNode().GetFileName()),
                              name="patient 12")
    params.inputVolume = plain
    assert logic.sequenceSlots(params)[0].volume is plain
    assert plain in sceneVolumes(headless_scene)


def _moved(source: Path, target: Path) -> Path:
    """``source`` resampled with SimpleITK onto a coarser, shifted grid (another scan's
    geometry, as when a sequence was acquired with other settings)."""
    image = sitk.ReadImage(str(source))
    spacing = [s * f for s, f in zip(image.GetSpacing(), (1.5, 1.25, 2.0))]
    size = [int(n * s / t) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    origin = [o + d for o, d in zip(image.GetOrigin(), (3.0, -2.0, 5.0))]
    grid = sitk.Image(size, image.GetPixelID())
    grid.SetSpacing(spacing)
    grid.SetOrigin(origin)
    grid.SetDirection(image.GetDirection())
    sitk.WriteImage(sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, 0), str(target))
    return target


@pytest.mark.slow
def test_sequences_on_different_grids_are_resampled_onto_the_first(
        headless_scene, data_dir, tmp_path) -> None:
    """T1c on a coarser, shifted grid: the engine gets it on the FLAIR grid, and the
    segmentation lies on the FLAIR volume's grid."""
    folder = data_dir / "brats_4seq" / "TCGA-DU-7294"
    flairFile = folder / "TCGA-DU-7294_fla_bet.nii.gz"
    model = calibrated_model(tmp_path / "two.sarmodel", [flairFile, flairFile], in_channels=2,
                             sequences=("flair", "t1c"), spacing=(4.0, 4.0, 4.0))
    flair = MrmlIO.loadVolume(headless_scene, flairFile)
    moved = MrmlIO.loadVolume(headless_scene,
                              _moved(folder / "TCGA-DU-7294_t1c_bet.nii.gz",
                                     tmp_path / "TCGA-DU-7294_t1c_moved.nrrd"))
    assert moved.GetImageData().GetDimensions() != flair.GetImageData().GetDimensions()
    volumesBefore = len(sceneVolumes(headless_scene))
    logic, params = _params(headless_scene, model, moved)
    job = logic.prepareSegment(params)
    assert len(sceneVolumes(headless_scene)) == volumesBefore  # no resampled node left
    case = job.cases[0]
    assert case.volume is flair  # the first sequence gives the grid
    written = {p.stem: sitk.ReadImage(str(p)) for p in case.inputFile.iterdir()}
    reference = node_grid(flair)
    for image in written.values():
        assert image.GetSize() == reference.GetSize()
        assert np.allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-4)
        assert np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-3)
        assert np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-5)
    # the resampled T1c is the moved scan's content on the FLAIR grid
    expected = read_on_node(tmp_path / "TCGA-DU-7294_t1c_moved.nrrd", flair).astype(float)
    got = sitk.GetArrayFromImage(written["t1c"]).astype(float)
    inside = expected > 0
    assert inside.mean() > 0.05
    assert np.corrcoef(expected[inside], got[inside])[0, 1] > 0.95

    result = logic.startSegment(job).wait(timeout=300)
    assert result.ok, result.message
    labelFile = Path(result.summary["outputs"][0]["label"])
    label = sitk.ReadImage(str(labelFile))
    assert label.GetSize() == reference.GetSize()
    assert np.allclose(label.GetOrigin(), reference.GetOrigin(), atol=1e-3)
    assert np.allclose(label.GetSpacing(), reference.GetSpacing(), atol=1e-4)
    engineVoxels = read_on_node(labelFile, flair) > 0  # read now: finishing removes it
    [done] = logic.finishSegment(job, result, show3D=False)
    assert done.segmentation is not None, done.error
    [segment] = segmentInfo(done.segmentation)
    converter = slicer.vtkSegmentationConverter
    matrix = vtk.vtkMatrix4x4()
    flair.GetIJKToRASMatrix(matrix)
    geometry = done.segmentation.GetSegmentation().GetConversionParameter(
        converter.GetReferenceImageGeometryParameterName())
    assert geometry == converter.SerializeImageGeometry(matrix, flair.GetImageData())
    voxels = segment_voxels(headless_scene, done.segmentation, segment["id"], flair)
    assert voxels.shape == slicer.util.arrayFromVolume(flair).shape
    assert np.array_equal(voxels, engineVoxels)
    assert 0 < voxels.sum() < voxels.size


def test_one_channel_model_has_no_slots(headless_scene, tcga, tmp_path) -> None:
    model = calibrated_model(tmp_path / "ct.sarmodel", sequences=(), modalities=("CT",))
    logic, params = _params(headless_scene, model, tcga["flair"])
    assert logic.sequenceSlots(params) == []
    job = logic.prepareSegment(params)  # the input volume alone, as one file
    try:
        assert job.cases[0].inputFile.is_file() and job.cases[0].volume is tcga["flair"]
    finally:
        logic.discardSegment(job)
