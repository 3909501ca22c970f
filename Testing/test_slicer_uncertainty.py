"""Correction guided by uncertainty on real MRML: the engine's confidence maps come back
as coloured overlays, the largest uncertain regions are listed, slice views jump to
them; the result is named after input and model and placed in the input's study."""

from __future__ import annotations

from pathlib import Path

import conftest_slicer  # noqa: F401  (puts the module folder on sys.path)
import numpy as np
import pytest
import slicer
from inference_models import calibrated_model

from SARCore.models.modelfile import load_model_file
from SARSegmentationLib import MrmlIO
from SARSegmentationLib.Logic import SARLogic
from SARSegmentationLib.SegmentRun import prepareSegmentJob, startSegmentJob
from SARSegmentationLib.Uncertainty import (
    RegionNavigator,
    showOverlay,
    uncertainRegions,
    uncertaintyScore,
)


def _axial_view(scene):
    view = scene.AddNewNodeByClass("vtkMRMLSliceNode")
    view.SetLayoutName("Red")
    view.SetOrientationToAxial()
    return view


def test_regions_are_found_sorted_and_visited(headless_scene) -> None:
    probability = np.zeros((20, 30, 40), np.float32)  # [k, j, i]
    probability[2:6, 3:7, 4:8] = 0.5  # 64 unsure voxels
    probability[12:14, 20:22, 30:32] = 0.6  # 8 unsure voxels
    probability[15:18, 2:5, 2:5] = 0.99  # sure: not a region
    node = slicer.util.addVolumeFromArray(probability, name="p")
    node.SetSpacing(2.0, 2.0, 3.0)
    node.SetOrigin(-10.0, 5.0, 100.0)
    showOverlay(node, "probability")
    assert node.GetDisplayNode().GetColorNodeID() == "vtkMRMLColorTableNodeRainbow"
    assert uncertaintyScore(np.array([0.5, 0.0, 1.0, 0.75])).tolist() == [1.0, 0.0, 0.0, 0.5]
    regions = uncertainRegions(node)
    assert [r.voxels for r in regions] == [64, 8]
    assert regions[0].volumeMl == pytest.approx(64 * 12 / 1000)
    # centre of i 4..7, j 3..6, k 2..5, through the node's own IJK-to-RAS matrix
    ras = slicer.util.arrayFromVTKMatrix(_matrix(node)) @ [5.5, 4.5, 3.5, 1.0]
    assert regions[0].centerRAS == pytest.approx(tuple(ras[:3]))
    assert regions[0].centerRAS[2] == pytest.approx(100.0 + 3.0 * 3.5)
    view = _axial_view(headless_scene)
    navigator = RegionNavigator(headless_scene, regions)
    for region in (*regions, regions[0]):  # wraps round
        assert navigator.next() is region
        assert view.GetSliceToRAS().GetElement(2, 3) == pytest.approx(region.centerRAS[2])


def _matrix(node):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return matrix


def test_segment_with_uncertainty_through_the_module_logic(headless_scene, tmp_path,
                                                           ct_small) -> None:
    model = calibrated_model(tmp_path / "m.sarmodel", [ct_small], preset="ct",
                             spacing=(4.0, 4.0, 4.0), sequences=(), modalities=("CT",),
                             name="random-ct")
    volume = MrmlIO.loadVolume(headless_scene, ct_small)
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(headless_scene)
    patient = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "patient")
    study = hierarchy.CreateStudyItem(patient, "CT study")
    hierarchy.CreateItem(study, volume)  # what DICOM import does inside Slicer
    header, _ = load_model_file(model)
    job = prepareSegmentJob(headless_scene, [volume], Path(model), device="cpu", header=header,
                            probabilities=True, tta=True)
    assert "--probabilities" in job.command and "--tta" in job.command
    result = startSegmentJob(job).wait(timeout=300)
    assert result.ok, result.message
    [case] = SARLogic(headless_scene).finishSegment(job, result, show3D=False)
    segmentation = case.segmentation
    assert segmentation.GetName() == f"{volume.GetName()} - random-ct"
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(segmentation)) == study
    assert set(case.confidence) == {"probability", "disagreement"}
    probability = case.confidence["probability"]
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(probability)) == study
    assert probability.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    values = slicer.util.arrayFromVolume(probability)
    assert 0.0 <= values.min() and values.max() <= 1.0
    disagreement = case.confidence["disagreement"]
    top = float(uncertaintyScore(slicer.util.arrayFromVolume(disagreement), "disagreement").max())
    assert top > 0  # a random network's mirrored predictions differ somewhere
    regions = uncertainRegions(disagreement, threshold=0.5 * top, limit=5)
    assert regions and len(regions) <= 5
    assert [r.voxels for r in regions] == sorted((r.voxels for r in regions), reverse=True)
    bounds = [0.0] * 6
    volume.GetRASBounds(bounds)
    for region in regions:
        for axis in range(3):
            assert bounds[2 * axis] - 1e-3 <= region.centerRAS[axis] <= bounds[2 * axis + 1] + 1e-3
