"""Headless Slicer for the module's tests: real MRML from PyPI ``slicer-core``, no Qt.

Puts the module folder on ``sys.path`` (``SARSegmentationLib`` then imports as inside
Slicer) and provides ``headless_scene``: a fresh scene per test built by the module's own
:func:`SARSegmentationLib.Headless.makeScene`. Use it with
``from conftest_slicer import headless_scene  # noqa: F401``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "SARSegmentation"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))


@pytest.fixture()
def headless_scene(tmp_path_factory):
    """A new headless MRML scene with Slicer's module logics registered."""
    from SARSegmentationLib.Headless import makeScene

    scene = makeScene(tmp_path_factory.mktemp("slicer-home"))
    yield scene
    scene.Clear(True)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, mri_tcga, brats2015_cases) -> Path:
    """A small real segmentation model, made the way the panel makes one.

    The module's ``makeQuickModel`` sends the two TCGA-GBM scans with their manual tumor
    masks through "Add to training set" into an MSD folder and runs the Fine-tune command
    (test-sized: width / 8, one step, 4 mm) with the real engine. After one step every
    probability is about 0.47 (eval-mode batch norm still holds its initial statistics),
    so the model would segment nothing and voxel comparisons would be empty: the fixture
    then rescales the 1x1 output layer through SARCore's model-file API
    (``logit' = 8 (logit - t) / (max - min)`` over a real BRATS scan, ``t`` the level above
    which about a tenth of it lies), giving a spatially structured "tumor" mask.
    """
    import numpy as np
    import SimpleITK as sitk
    import slicer

    from SARCore.inference.model import load_segmentation_model
    from SARCore.inference.segment import Segmenter, SegmentOptions
    from SARCore.models.modelfile import load_model_file, save_model_file
    from SARSegmentationLib import MrmlIO
    from SARSegmentationLib.Headless import makeScene
    from SARSegmentationLib.QuickModel import makeQuickModel

    root = tmp_path_factory.mktemp("tiny-model")
    scene = makeScene(root / "home")
    volumes = [MrmlIO.loadVolume(scene, mri_tcga.with_name(f"brain{i}_image.nrrd"))
               for i in (1, 2)]
    masks = [slicer.util.arrayFromVolume(MrmlIO.loadVolume(
        scene, mri_tcga.with_name(f"brain{i}_label.nrrd"), labelmap=True)) == 1 for i in (1, 2)]
    trained = makeQuickModel(scene, volumes, masks, root)
    scan = sitk.ReadImage(str(brats2015_cases[3] / "Flair_subtrMeanDivStd.nii.gz"))
    segmenter = Segmenter(load_segmentation_model(trained), SegmentOptions(device="cpu"))
    p = segmenter.probabilities([scan])[0].astype(np.float64)
    logit = np.log(p / (1 - p))
    levels = np.unique(logit)  # float16 probabilities: a few distinct levels
    above = np.array([(logit > level).mean() for level in levels])
    pick = int(np.argmin(np.abs(above - 0.1)))
    threshold = (levels[pick] + levels[min(pick + 1, len(levels) - 1)]) / 2
    scale = 8.0 / max(float(logit.max() - logit.min()), 1e-6)
    header, state = load_model_file(trained)
    state["unet.head.weight"] = state["unet.head.weight"] * scale
    state["unet.head.bias"] = (state["unet.head.bias"] - float(threshold)) * scale
    return save_model_file(root / "tiny.sarmodel", state, {**header, "name": "tiny-test"})


def node_grid(volume) -> sitk.Image:
    """An empty image on a volume node's grid, in ITK's LPS terms.

    Compared in physical space: Slicer reads a mirrored (left-handed) file as a right-handed
    grid with the k axis reversed, so array indices alone would not line up.
    """
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    m = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    lps = np.diag([-1.0, -1.0, 1.0])
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    image = sitk.Image([int(v) for v in volume.GetImageData().GetDimensions()], sitk.sitkUInt8)
    image.SetSpacing(spacing.tolist())
    image.SetOrigin((lps @ m[:3, 3]).tolist())
    image.SetDirection((lps @ (m[:3, :3] / spacing)).flatten().tolist())
    return image


def read_on_node(path, volume) -> np.ndarray:
    """Voxels of the file ``path`` on ``volume``'s grid, as ``[k, j, i]`` like the node."""
    image = sitk.Resample(sitk.ReadImage(str(path)), node_grid(volume), sitk.Transform(),
                          sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(image)


def segment_voxels(scene, node, segment_id, volume) -> np.ndarray:
    """A segment's voxels exported on ``volume``'s grid (``[k, j, i]`` booleans)."""
    import slicer
    import vtk

    label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segment_id)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
        node, ids, label, volume, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    array = slicer.util.arrayFromVolume(label) > 0
    scene.RemoveNode(label)
    return array
