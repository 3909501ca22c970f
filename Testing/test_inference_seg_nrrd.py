"""The .seg.nrrd writer: pynrrd reads it back; 3D Slicer's own storage node loads it."""

from __future__ import annotations

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk

from SARCore.errors import DataError
from SARCore.inference.model import SegmentClass
from SARCore.inference.seg_nrrd import write_seg_nrrd
from SARCore.io.arrays import array_to_image, image_to_array

CLASSES = [SegmentClass("necrosis", 1, (0.5, 0.1, 0.1)), SegmentClass("edema", 2, (0.1, 0.7, 0.2)),
           SegmentClass("non-enhancing", 3, (0.2, 0.3, 0.9)),
           SegmentClass("enhancing", 4, (1.0, 0.9, 0.0)), SegmentClass("absent", 9, (0, 0, 0))]


@pytest.fixture(scope="module")
def brats_labels(brats2015_cases) -> sitk.Image:
    """pat0001's manual labels 0-4, cropped around the tumor, as uint8."""
    labels = sitk.ReadImage(str(brats2015_cases[0] / "OTMultiClass.nii.gz"), sitk.sitkUInt8)
    return sitk.RegionOfInterest(labels, [64, 104, 80], [52, 72, 26])


@pytest.fixture(scope="module")
def tcga_labels(mri_tcga) -> sitk.Image:
    """The TCGA tumor mask (mirrored y axis, 6.5 mm slices)."""
    return sitk.ReadImage(str(mri_tcga).replace("_image", "_label"), sitk.sitkUInt8)


def test_pynrrd_reads_voxels_geometry_and_segments(tmp_path, brats_labels) -> None:
    path = write_seg_nrrd(tmp_path / "case.seg.nrrd", brats_labels, CLASSES)
    data, header = nrrd.read(str(path))
    values = image_to_array(brats_labels)
    np.testing.assert_array_equal(data, values)
    assert header["type"] == "uint8" and header["space"] == "left-posterior-superior"
    np.testing.assert_allclose(header["space origin"], brats_labels.GetOrigin())
    np.testing.assert_allclose(header["space directions"], np.diag(brats_labels.GetSpacing()))
    for index, segment in enumerate(CLASSES):
        key = f"Segment{index}_"
        assert header[key + "Name"] == segment.name
        assert header[key + "LabelValue"] == str(segment.label)
        assert [float(v) for v in header[key + "Color"].split()] == list(segment.color)
        assert header[key + "Layer"] == "0"
        assert header[key + "ID"] == f"Segment_{segment.label}"
        where = np.argwhere(values == segment.label)
        expected = ("0 -1 0 -1 0 -1" if where.size == 0 else " ".join(
            f"{lo} {hi}" for lo, hi in zip(where.min(0), where.max(0))))
        assert header[key + "Extent"] == expected
    assert header["Segment4_Extent"] == "0 -1 0 -1 0 -1"  # label 9 is absent
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"


def test_label_values_above_255_are_refused(tmp_path, brats_labels) -> None:
    with pytest.raises(DataError, match="at most 255"):
        write_seg_nrrd(tmp_path / "x.seg.nrrd", brats_labels, [SegmentClass("big", 300, (1, 1, 1))])
    assert not (tmp_path / "x.seg.nrrd").exists()


def _slicer_load(path):
    import slicer

    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    node.SetAndObserveStorageNodeID(storage.GetID())
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    return node.GetSegmentation()


@pytest.mark.parametrize("which", ["brats_labels", "tcga_labels"])
def test_slicer_opens_it_as_a_segmentation(tmp_path, request, which) -> None:
    """Slicer's vtkMRMLSegmentationStorageNode: names, colours, values, voxels, position."""
    labels = request.getfixturevalue(which)
    values = image_to_array(labels)
    classes = CLASSES[:4] if which == "brats_labels" else [SegmentClass("tumor", 1, (1, 0, 0))]
    segmentation = _slicer_load(write_seg_nrrd(tmp_path / "s.seg.nrrd", labels, classes))
    assert segmentation.GetNumberOfSegments() == len(classes)
    lps = np.diag([-1.0, -1.0, 1.0])
    for index, expected in enumerate(classes):
        segment = segmentation.GetNthSegment(index)
        assert segment.GetName() == expected.name and segment.GetLabelValue() == expected.label
        np.testing.assert_allclose(segment.GetColor(), expected.color)
        image = segment.GetRepresentation("Binary labelmap")
        ours = np.argwhere(values == expected.label)
        theirs = _slicer_voxels(image, expected.label)
        assert len(theirs) == len(ours)
        # compared in physical space (Slicer may re-grid a mirrored volume right-handed)
        centre = labels.TransformContinuousIndexToPhysicalPoint(ours.mean(0).tolist())
        np.testing.assert_allclose(_world_centre(image, theirs), lps @ np.array(centre),
                                   atol=1e-3)


def _slicer_voxels(image, label: int) -> np.ndarray:
    """``(n, 3)`` i, j, k indices of the voxels of a vtkOrientedImageData equal to ``label``."""
    from vtk.util.numpy_support import vtk_to_numpy

    extent = image.GetExtent()
    dims = [extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1]
    scalars = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1])
    return np.argwhere(scalars == label)[:, ::-1] + np.array(extent[::2])


def _world_centre(image, voxels: np.ndarray) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    m = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    return m[:3, :3] @ voxels.mean(0) + m[:3, 3]


def test_write_is_atomic_and_keeps_the_old_file_on_error(tmp_path) -> None:
    target = tmp_path / "keep.seg.nrrd"
    target.write_bytes(b"old")
    bad = array_to_image(np.full((4, 4, 4), 400, dtype=np.uint16))
    with pytest.raises(DataError):
        write_seg_nrrd(target, bad, [SegmentClass("x", 1, (1, 1, 1))])
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob(".tmp-*"))
