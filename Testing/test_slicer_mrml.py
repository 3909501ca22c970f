"""The module's MRML side on real scans, headless (PyPI slicer-core, no Qt).

Label maps -> named, colored segments on the input's geometry; ``.seg.nrrd`` round trip;
the correction export to an MSD dataset; the parameter node through a scene file.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from conftest_slicer import read_on_node

from SARCore.errors import DataError, ModelFileError
from SARSegmentationLib import MrmlIO
from SARSegmentationLib.SegmentationLogic import (
    SegmentationExistsError,
    classesFromHeader,
    importLabelmapFile,
    segmentInfo,
)

HEADER = {"task": "segmentation", "classes": [
    {"name": "tumor core", "label": 1, "color": [0.9, 0.1, 0.1]},
    {"name": "edema", "label": 2, "color": [0.1, 0.8, 0.2],
     "terminology": "Segmentation category and type - 3D Slicer General Anatomy list"
                    "~SCT^49755003^Morphologically Altered Structure~SCT^79654002^Edema"
                    "~^^~Anatomic codes - DICOM master list~^^~^^"},
    {"name": "non-enhancing", "label": 3, "color": [0.2, 0.3, 0.9]},
    {"name": "enhancing", "label": 4, "color": [1.0, 1.0, 0.0]}]}
NAMES = ["tumor core", "edema", "non-enhancing", "enhancing"]


def _segment_voxels(scene, node, segment_id, volume) -> np.ndarray:
    """One segment as a 0/1 ``[k, j, i]`` array on ``volume``'s grid (Slicer's own export)."""
    import vtk

    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
        node, ids, label, volume, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    same_grid = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    label.GetIJKToRASMatrix(same_grid[0])
    volume.GetIJKToRASMatrix(same_grid[1])
    assert all(same_grid[0].GetElement(r, c) == pytest.approx(same_grid[1].GetElement(r, c))
               for r in range(4) for c in range(4)), "segment not on the input's geometry"
    array = slicer.util.arrayFromVolume(label).copy()
    scene.RemoveNode(label)
    return (array > 0).astype(np.uint8)


@pytest.fixture()
def brats_case(headless_scene, brats2015_cases):
    """A real BRATS FLAIR volume node and its manual multi-class label file."""
    folder = brats2015_cases[0]
    volume = MrmlIO.loadVolume(headless_scene, folder / "Flair_subtrMeanDivStd.nii.gz")
    return headless_scene, volume, folder / "OTMultiClass.nii.gz"


def test_labelmap_becomes_named_colored_segments(brats_case) -> None:
    scene, volume, label_file = brats_case
    node = importLabelmapFile(scene, label_file, classesFromHeader(HEADER), volume)
    info = segmentInfo(node)
    assert [s["name"] for s in info] == NAMES
    assert [s["label"] for s in info] == [1, 2, 3, 4]
    assert info[1]["color"] == pytest.approx((0.1, 0.8, 0.2))
    edema = node.GetSegmentation().GetSegment(info[1]["id"])
    term = vtk_reference()
    assert edema.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), term)
    assert "Edema" in str(term)
    # Same voxels as the label file, sampled on the input volume's own grid.
    truth = read_on_node(label_file, volume)
    for segment in info:
        voxels = _segment_voxels(scene, node, segment["id"], volume)
        assert np.array_equal(voxels.astype(bool), truth == segment["label"])
        assert voxels.sum() > 0
    assert node.GetSegmentation().ContainsRepresentation("Closed surface")


def vtk_reference():
    import vtk

    return vtk.reference("")


def test_classes_missing_from_the_result_get_empty_segments(headless_scene, mri_tcga) -> None:
    volume = MrmlIO.loadVolume(headless_scene, mri_tcga)
    label_file = mri_tcga.with_name("brain1_label.nrrd")  # only label 1 is present
    node = importLabelmapFile(headless_scene, label_file, classesFromHeader(HEADER), volume,
                              show3D=False)
    info = segmentInfo(node)
    assert [s["name"] for s in info] == NAMES
    sizes = [int(_segment_voxels(headless_scene, node, s["id"], volume).sum()) for s in info]
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(label_file)))
    assert sizes == [int((truth == 1).sum()), 0, 0, 0]


def test_existing_segmentation_is_not_overwritten_without_permission(brats_case) -> None:
    scene, volume, label_file = brats_case
    classes = classesFromHeader(HEADER)
    node = importLabelmapFile(scene, label_file, classes, volume, show3D=False)
    with pytest.raises(SegmentationExistsError, match="already has 4 segments"):
        importLabelmapFile(scene, label_file, classes, volume, node)
    assert node.GetSegmentation().GetNumberOfSegments() == 4
    same = importLabelmapFile(scene, label_file, classes, volume, node, overwrite=True,
                              show3D=False)
    assert same is node and node.GetSegmentation().GetNumberOfSegments() == 4


def test_seg_nrrd_round_trip_keeps_names_colors_and_voxels(brats_case, tmp_path) -> None:
    scene, volume, label_file = brats_case
    node = importLabelmapFile(scene, label_file, classesFromHeader(HEADER), volume,
                              show3D=False)
    path = MrmlIO.saveNode(node, tmp_path / "case.seg.nrrd")
    again = MrmlIO.loadSegmentation(scene, path)
    before, after = segmentInfo(node), segmentInfo(again)
    assert [(s["name"], s["label"]) for s in after] == [(s["name"], s["label"]) for s in before]
    assert np.allclose([s["color"] for s in after], [s["color"] for s in before], atol=1e-6)
    for old, new in zip(before, after):
        assert np.array_equal(_segment_voxels(scene, node, old["id"], volume),
                              _segment_voxels(scene, again, new["id"], volume))
    assert not list(tmp_path.glob(".tmp-*"))


def test_header_without_classes_is_a_clear_error() -> None:
    with pytest.raises(ModelFileError, match="lists no classes"):
        classesFromHeader({"task": "pretrain", "name": "mg"})


def test_unreadable_volume_names_the_file(headless_scene, tmp_path) -> None:
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.nii.gz"):
        MrmlIO.loadVolume(headless_scene, bad)
