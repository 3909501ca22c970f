"""Probabilities on the network's grid -> labels on the scan's grid, checked by hand."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SARCore.inference.backmap import CHUNK_SLICES, decide, labels_on_reference
from SARCore.io.arrays import image_to_array
from SARCore.io.geometry import Geometry

#: The network's grid: 2 mm voxels; the scan: 1 mm voxels over the same 20 mm along x.
COARSE = Geometry((10, 4, 4), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def _scan() -> sitk.Image:
    image = sitk.Image(20, 8, 8, sitk.sitkInt16)
    image.SetSpacing((1.0, 1.0, 1.0))
    return image


def test_softmax_boundary_lands_where_interpolated_probabilities_cross() -> None:
    """class 1 = 0.9 below coarse x index 5, class 2 = 0.7 from it, background 0.1.

    Between coarse voxels 4 and 5 (x = 8 and 10 mm) class 1 = 0.9 (1 - f) and class 2 =
    0.7 f cross at f = 0.5625, x = 9.125 mm: fine voxel x = 9 mm is class 1, 10 mm class 2.
    Fine voxel 19 mm lies beyond the last coarse centre (18 mm): nearest value, class 2.
    """
    probabilities = np.zeros((3, 10, 4, 4), dtype=np.float16)
    probabilities[0] = 0.1
    probabilities[1, :5] = 0.9
    probabilities[2, 5:] = 0.7
    labels = labels_on_reference(probabilities, COARSE, _scan(), "softmax", [3, 8])
    values = image_to_array(labels)
    assert labels.GetSize() == (20, 8, 8) and values.dtype == np.uint8
    np.testing.assert_array_equal(values[:, 3, 3], [3] * 10 + [8] * 10)


def test_sigmoid_threshold_on_the_scan_grid() -> None:
    """p = 0.75 below coarse index 5, 0.25 from it: p(9 mm) = 0.5 counts as foreground."""
    probabilities = np.full((1, 10, 4, 4), 0.25, dtype=np.float16)
    probabilities[0, :5] = 0.75
    values = image_to_array(labels_on_reference(probabilities, COARSE, _scan(), "sigmoid", [1]))
    np.testing.assert_array_equal(values[:, 2, 5], [1] * 10 + [0] * 10)


def test_same_grid_is_decided_in_chunks_without_resampling() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet([1, 1, 1], size=(6, 5, 2 * CHUNK_SLICES + 3)).astype(
        np.float16).transpose(3, 0, 1, 2)
    scan = sitk.Image(6, 5, 2 * CHUNK_SLICES + 3, sitk.sitkUInt8)
    scan.SetOrigin((4.0, -2.0, 7.5))
    labels = labels_on_reference(probabilities, Geometry.of(scan), scan, "softmax", [1, 300])
    expected = np.array([0, 1, 300])[np.argmax(probabilities.astype(np.float32), axis=0)]
    values = image_to_array(labels)
    assert values.dtype == np.uint16  # a label above 255 needs 16 bits
    np.testing.assert_array_equal(values, expected)
    assert labels.GetOrigin() == (4.0, -2.0, 7.5)


def test_decide_sigmoid_and_softmax() -> None:
    assert decide(np.array([[0.49, 0.5, 0.9]]), "sigmoid", [4]).tolist() == [0, 4, 4]
    softmax = np.array([[0.6, 0.2, 0.1], [0.3, 0.7, 0.2], [0.1, 0.1, 0.7]])
    assert decide(softmax, "softmax", [2, 5]).tolist() == [0, 2, 5]
