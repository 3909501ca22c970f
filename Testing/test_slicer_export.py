"""The correction loop and the panel settings, headless on real scans.

A segmentation is edited the way the Segment Editor does it (a binary label map written
into a segment), exported into an MSD dataset folder, and read back; the module's
parameter node survives saving and reloading the scene.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import slicer
import vtk
from conftest_slicer import read_on_node

from SARCore.errors import DataError
from SARSegmentationLib import MrmlIO
from SARSegmentationLib.DatasetExport import CaseExistsError, addCaseToDataset
from SARSegmentationLib.Headless import makeScene
from SARSegmentationLib.Parameters import SARParameters, getParameterNode
from SARSegmentationLib.SegmentationLogic import classesFromHeader, importLabelmapFile

TUMOR_MODEL = {"classes": [{"name": "tumor", "label": 1, "color": [1, 0, 0]},
                           {"name": "edema", "label": 2, "color": [0, 1, 0]}]}


def _paint(scene, segmentation, segment_id, volume, mask: np.ndarray) -> None:
    """Replace a segment's voxels with ``mask`` ([k, j, i] on ``volume``'s grid)."""
    holder = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    holder.SetIJKToRASMatrix(matrix)
    slicer.util.updateVolumeFromArray(holder, mask.astype(np.uint8))
    image = slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(holder)
    assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        image, segmentation, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    scene.RemoveNode(holder)


@pytest.fixture()
def corrected(headless_scene, mri_tcga):
    """brain1 segmented (its manual label stands in for the model's output), then
    corrected: part of the tumor erased, a missed region painted, a new segment added."""
    scene = headless_scene
    volume = MrmlIO.loadVolume(scene, mri_tcga)
    node = importLabelmapFile(scene, mri_tcga.with_name("brain1_label.nrrd"),
                              classesFromHeader(TUMOR_MODEL), volume, show3D=False)
    tumor_id, edema_id = (node.GetSegmentation().GetNthSegmentID(i) for i in range(2))
    tumor = slicer.util.arrayFromVolume(MrmlIO.loadVolume(
        scene, mri_tcga.with_name("brain1_label.nrrd"), labelmap=True)) == 1
    tumor[:, :, :128] = False  # erase the left half
    tumor[10:12, 20:30, 20:30] = True  # paint a missed region
    _paint(scene, node, tumor_id, volume, tumor)
    edema = np.zeros_like(tumor)
    edema[5:8, 100:110, 100:110] = True
    _paint(scene, node, edema_id, volume, edema)
    necrosis_id = node.GetSegmentation().AddEmptySegment("", "necrosis", [0.2, 0.2, 0.2])
    necrosis = np.zeros_like(tumor)
    necrosis[14:16, 200:204, 60:70] = True
    _paint(scene, node, necrosis_id, volume, necrosis)
    return scene, volume, node, {1: tumor, 2: edema, 3: necrosis}


def test_corrected_segmentation_is_exported_as_an_msd_case(corrected, mri_tcga, tmp_path):
    scene, volume, node, painted = corrected
    folder = tmp_path / "my-dataset"
    result = addCaseToDataset(scene, node, volume, folder, modality="MRI")
    assert result.labels == {1: "tumor", 2: "edema", 3: "necrosis"}
    label = read_on_node(result.labelPath, volume)
    for value, mask in painted.items():
        assert np.array_equal(label == value, mask), f"label {value} differs from the edit"
    assert set(np.unique(label)) == {0, 1, 2, 3}
    assert np.array_equal(read_on_node(result.imagePath, volume), slicer.util.arrayFromVolume(volume))
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["labels"] == {"0": "background", "1": "tumor", "2": "edema",
                                 "3": "necrosis"}
    assert dataset["training"] == [{"image": "./imagesTr/brain1_image.nii.gz",
                                    "label": "./labelsTr/brain1_image.nii.gz"}]
    assert dataset["numTraining"] == 1 and dataset["modality"] == {"0": "MRI"}
    assert not list(folder.rglob(".tmp-*"))


def test_dataset_is_extended_by_name_and_cases_are_not_replaced_silently(
        corrected, mri_tcga, tmp_path):
    scene, volume, node, _ = corrected
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "dataset.json").write_text(json.dumps({
        "name": "earlier", "labels": {"0": "background", "1": "necrosis", "5": "tumor"},
        "modality": {"0": "FLAIR"}, "training": [], "numTraining": 0}))
    first = addCaseToDataset(scene, node, volume, folder, modality="MRI")
    assert first.labels == {5: "tumor", 1: "necrosis", 2: "edema"}
    label = read_on_node(first.labelPath, volume)
    assert set(np.unique(label)) == {0, 1, 2, 5}
    with pytest.raises(CaseExistsError, match="already in the dataset"):
        addCaseToDataset(scene, node, volume, folder)
    other = MrmlIO.loadVolume(scene, mri_tcga.with_name("brain2_image.nrrd"))
    second = importLabelmapFile(scene, mri_tcga.with_name("brain2_label.nrrd"),
                                classesFromHeader(TUMOR_MODEL), other, show3D=False)
    addCaseToDataset(scene, second, other, folder)
    addCaseToDataset(scene, node, volume, folder, replace=True)
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["name"] == "earlier" and dataset["modality"] == {"0": "FLAIR"}
    assert dataset["numTraining"] == 2
    assert sorted(e["image"] for e in dataset["training"]) == [
        "./imagesTr/brain1_image.nii.gz", "./imagesTr/brain2_image.nii.gz"]
    assert dataset["labels"] == {"0": "background", "1": "necrosis", "2": "edema",
                                 "5": "tumor"}


def test_duplicate_segment_names_are_refused(corrected, tmp_path):
    scene, volume, node, _ = corrected
    node.GetSegmentation().AddEmptySegment("", "tumor", [1, 1, 1])
    with pytest.raises(DataError, match="same name"):
        addCaseToDataset(scene, node, volume, tmp_path / "ds")
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_parameters_survive_saving_and_reloading_the_scene(headless_scene, mri_tcga, tmp_path):
    scene = headless_scene
    volume = MrmlIO.loadVolume(scene, mri_tcga)
    extra = MrmlIO.loadVolume(scene, mri_tcga.with_name("brain2_image.nrrd"))
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    params = SARParameters(getParameterNode(scene))
    assert params.pretrainEpochs == 100 and params.device == "auto"  # defaults
    params.pretrainMethod, params.pretrainEpochs = "genesis", 7
    params.finetuneLabelFraction, params.fastMode = 0.25, True
    params.modelPath, params.device = "/models/brain.sarmodel", "cpu"
    params.inputVolume, params.outputSegmentation = volume, segmentation
    params.dataVolumes = [volume, extra]
    params.setSequenceVolume("t1c", extra)  # a per-sequence pick (multi-sequence model)
    scene_file = tmp_path / "scene.mrml"
    scene.SetRootDirectory(str(tmp_path))
    scene.SetURL(str(scene_file))
    assert scene.Commit()

    again = makeScene(tmp_path / "home2")
    again.SetURL(str(scene_file))
    assert again.Connect()
    restored = SARParameters(getParameterNode(again))
    assert getParameterNode(again) is getParameterNode(again)  # found, not duplicated
    assert (restored.pretrainMethod, restored.pretrainEpochs) == ("genesis", 7)
    assert restored.finetuneLabelFraction == 0.25 and restored.fastMode is True
    assert (restored.modelPath, restored.device) == ("/models/brain.sarmodel", "cpu")
    assert restored.inputVolume.GetName() == "brain1_image"
    assert restored.outputSegmentation.GetName() == "result"
    assert [n.GetName() for n in restored.dataVolumes] == ["brain1_image", "brain2_image"]
    assert restored.finetuneEpochs == 100  # never set: still the default
    assert restored.sequenceVolume("t1c").GetName() == "brain2_image"
    assert restored.sequenceVolume("flair") is None
    assert slicer.util.arrayFromVolume(restored.inputVolume).shape == (25, 256, 256)


def test_hand_edited_parameter_falls_back_to_its_default(headless_scene):
    params = SARParameters(getParameterNode(headless_scene))
    params.node.SetParameter("pretrainEpochs", "many")
    assert params.pretrainEpochs == 100
    assert "pretrainEpochs" in SARParameters.settingNames()
    assert set(SARParameters.referenceRoles()) == {"dataVolumes", "inputVolume",
                                                   "outputSegmentation"}
