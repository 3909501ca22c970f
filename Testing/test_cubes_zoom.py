"""Cubes are zooms, not squashes (issue 9, protocol fix 2): the resize of a crop to
64x64x32 is the same zoom on every axis, on the chest CT and on a BraTS volume."""

from __future__ import annotations

import numpy as np
import pytest

from SARCore.cubes.config import CUBE_SHAPE
from SARCore.cubes.sampling import crop_side, zoom_side
from SARCore.io.geometry import Geometry
from SARCore.io.readers import read_image


def _zooms(side, spacing):
    """mm per cube voxel along each axis: equal on every axis for a pure zoom."""
    return np.array([n * s / c for n, s, c in zip(side, spacing, CUBE_SHAPE)])


@pytest.mark.parametrize("relative, spacing", [
    ("ct/chest_ct/chest_ct_256x256x141.nii.gz", (1.0, 1.0, 1.0)),  # pre-training grid
    ("ct/chest_ct/chest_ct_256x256x141.nii.gz", (2.0, 2.0, 2.0)),
    ("ct/lung_ct/3DCT_lung.mha", (1.0, 1.0, 1.0)),
    ("brats2015/brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz", (1.0, 1.0, 1.0)),
    ("brats2015/brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz", (2.0, 2.0, 2.0)),
])
def test_zoom_is_the_same_on_every_axis(data_dir, relative, spacing):
    grid = Geometry.of(read_image(data_dir / relative)).with_spacing(spacing)
    rng = np.random.default_rng(0)
    for scale in (0, 1, 2):
        for _ in range(20):
            side = zoom_side(grid.size, grid.spacing, scale, rng, 0.1, CUBE_SHAPE)
            zooms = _zooms(side, grid.spacing)
            assert zooms.max() / zooms.min() <= 1.05, (scale, side)
            assert all(1 <= n <= m for n, m in zip(side, grid.size))


def test_the_old_fraction_rule_squashes_z(data_dir):
    """What the zoom rule fixes: the same fraction of every axis squashes z."""
    for relative, squash in (("ct/lung_ct/3DCT_lung.mha", 3.5),
                             ("brats2015/brats_2013_pat0001_1/Flair_subtrMeanDivStd.nii.gz",
                              1.25)):
        grid = Geometry.of(read_image(data_dir / relative)).with_spacing((1.0, 1.0, 1.0))
        side = crop_side(grid.size, 0, np.random.default_rng(0), 0.0)
        zooms = _zooms(side, grid.spacing)
        assert zooms[2] / zooms[0] >= squash  # z: more mm per cube voxel


def test_a_thin_volume_shrinks_the_box_instead_of_squashing_it():
    rng = np.random.default_rng(1)
    shape, spacing = (200, 200, 20), (1.0, 1.0, 1.0)  # 20 mm thick, 200 mm wide
    side = zoom_side(shape, spacing, 0, rng, 0.0, CUBE_SHAPE)
    assert side == (40, 40, 20)  # the 100x100x50 mm box, shrunk to fit z
