"""Batch builders of the baseline proxy tasks, checked on cubes cut from a real CT."""

from __future__ import annotations

import pytest
import torch
from baseline_cubes import real_cubes

from SARCore.errors import ConfigError
from SARCore.pretrain import proxy_tasks as proxy
from SARCore.pretrain.permutations import jigsaw_permutations

#: 3x3x3 cells of 21-22 x 21-22 x 10-11 voxels: with this jitter the crops are exactly
#: 16x16x8, so patches are plain sub-arrays of the cube and can be compared voxel by voxel.
EXACT_GRID = proxy.PatchGrid(jitter=(5, 5, 2))


@pytest.fixture(scope="module")
def cubes(ct_small) -> torch.Tensor:
    return real_cubes(ct_small, 4)


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cell_slices(grid: proxy.PatchGrid, cell: int, shape) -> tuple[slice, ...]:
    """The centred crop of ``cell``, computed independently of ``extract``."""
    nx, ny, nz = grid.cells
    coords = (cell // (ny * nz), cell // nz % ny, cell % nz)
    slices = []
    for side, n, i, size in zip(shape, grid.cells, coords, grid.patch_size):
        low, high = i * side // n, (i + 1) * side // n
        start = low + (high - low - size) // 2
        slices.append(slice(start, start + size))
    return tuple(slices)


def test_real_cubes_are_normalised(cubes):
    assert cubes.shape == (4, 1, 64, 64, 32) and cubes.dtype == torch.float32
    assert 0.0 <= float(cubes.min()) and float(cubes.max()) <= 1.0
    assert float(cubes.std()) > 0.05


def test_crop_boxes_match_slicing(cubes):
    starts = torch.tensor([[[0, 5, 3], [40, 30, 20]]] * 4)
    crops = proxy.crop_boxes(cubes, starts, (16, 8, 8))
    assert crops.shape == (4, 2, 1, 16, 8, 8)
    assert torch.equal(crops[:, 0], cubes[:, :, 0:16, 5:13, 3:11])
    assert torch.equal(crops[:, 1], cubes[:, :, 40:56, 30:38, 20:28])


def test_all_rotation_classes_differ_and_inverse_recovers(cubes):
    crop = cubes[:1, :, 16:48, 16:48, :].expand(10, -1, -1, -1, -1)
    labels = torch.arange(10)
    rotated = proxy.rotate(crop, labels)
    for i in range(10):
        for j in range(i + 1, 10):
            assert not torch.equal(rotated[i], rotated[j]), (i, j)
    assert torch.equal(proxy.rotate(rotated, labels, inverse=True), crop)
    assert torch.equal(rotated[2], crop[2].flip(1, 2))          # 180 degrees in x-y
    assert torch.equal(rotated[5], crop[5].flip(2, 3))          # 180 degrees in y-z
    assert torch.equal(rotated[1], crop[1].transpose(1, 2).flip(1))  # 90 degrees in x-y


def test_rotation_batch_labels_match_rotation(cubes):
    inputs, labels = proxy.sample_rotation_batch(cubes, _seeded(3), random_position=False)
    assert inputs.shape == (4, 1, 32, 32, 32) and labels.shape == (4,)
    centre = cubes[:, :, 16:48, 16:48, :]
    assert torch.equal(proxy.rotate(inputs, labels, inverse=True), centre)


def test_rotation_batch_random_crop_lies_inside_the_cube(cubes):
    inputs, labels = proxy.sample_rotation_batch(cubes, _seeded(4))
    upright = proxy.rotate(inputs, labels, inverse=True)
    for b in range(4):
        windows = cubes[b, 0].unfold(0, 32, 1).unfold(1, 32, 1).unfold(2, 32, 1)
        match = (windows == upright[b, 0]).flatten(-3).all(dim=-1)
        assert bool(match.any())


def test_rotation_batch_is_reproducible(cubes):
    first = proxy.sample_rotation_batch(cubes, _seeded(7))
    second = proxy.sample_rotation_batch(cubes, _seeded(7))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    labels = [proxy.sample_rotation_batch(cubes, _seeded(s))[1] for s in range(5)]
    assert len({tuple(x.tolist()) for x in labels}) > 1


def test_default_grid_patches_have_encoder_size(cubes):
    grid = proxy.PatchGrid()
    assert grid.crop_size((64, 64, 32)) == (18, 18, 7)
    cells = torch.arange(27).expand(4, 27)
    patches = grid.extract(cubes, cells, _seeded())
    assert patches.shape == (4, 27, 1, 16, 16, 8)
    assert 0.0 <= float(patches.min()) and float(patches.max()) <= 1.0


def test_rpl_labels_skip_the_centre_cell():
    cells = proxy.rpl_label_to_cell(torch.arange(26), EXACT_GRID)
    assert cells.tolist() == [*range(13), *range(14, 27)]


def test_rpl_label_names_the_position_of_the_second_patch(cubes):
    many = cubes.repeat(16, 1, 1, 1, 1)                    # 64 samples: most labels drawn
    patches, labels = proxy.sample_rpl_batch(many, _seeded(0), EXACT_GRID, random_crops=False)
    assert patches.shape == (64, 2, 1, 16, 16, 8)
    assert int(labels.min()) >= 0 and int(labels.max()) <= 25
    assert len(set(labels.tolist())) >= 20
    centre = _cell_slices(EXACT_GRID, 13, (64, 64, 32))
    for b, label in enumerate(labels.tolist()):
        cell = label if label < 13 else label + 1
        assert torch.equal(patches[b, 0, 0], many[b, 0][centre])
        assert torch.equal(patches[b, 1, 0], many[b, 0][_cell_slices(EXACT_GRID, cell, (64, 64, 32))])


def test_random_crops_stay_inside_their_cells(cubes):
    cells = torch.arange(27).expand(4, 27)
    patches = EXACT_GRID.extract(cubes, cells, _seeded(5))
    edges = EXACT_GRID.edges((64, 64, 32))
    for cell in (0, 13, 26):
        i, j, k = cell // 9, cell // 3 % 3, cell % 3
        region = cubes[0, 0, edges[0][i]:edges[0][i + 1], edges[1][j]:edges[1][j + 1],
                       edges[2][k]:edges[2][k + 1]]
        windows = region.unfold(0, 16, 1).unfold(1, 16, 1).unfold(2, 8, 1)
        assert bool((windows == patches[0, cell, 0]).flatten(-3).all(dim=-1).any())


def test_jigsaw_positions_follow_the_permutation(cubes):
    table = jigsaw_permutations()
    patches, labels = proxy.sample_jigsaw_batch(cubes, _seeded(2), EXACT_GRID, table,
                                                random_crops=False)
    assert patches.shape == (4, 27, 1, 16, 16, 8)
    ordered = EXACT_GRID.extract(cubes, torch.arange(27).expand(4, 27))
    for b, label in enumerate(labels.tolist()):
        permutation = table[label]
        assert torch.equal(patches[b], ordered[b, permutation])
        restored = torch.empty_like(patches[b])
        restored[permutation] = patches[b]
        assert torch.equal(restored, ordered[b])


def test_split_grid_tiles_the_cube(cubes):
    patches = proxy.split_grid(cubes, (4, 4, 4))
    assert patches.shape == (4, 64, 1, 16, 16, 8)
    cell = (2 * 4 + 1) * 4 + 3                    # i=2 along x, j=1 along y, k=3 along z
    assert torch.equal(patches[:, cell], cubes[:, :, 32:48, 16:32, 24:32])
    assert torch.allclose(patches.sum(dim=(1, 2, 3, 4, 5)), cubes.sum(dim=(1, 2, 3, 4)))


def test_cpc_context_and_targets_are_disjoint_rows():
    context, targets = proxy.cpc_layout((4, 4, 4), 2)
    assert context.shape == (16, 10) and targets.shape == (16, 2)
    assert set((context // 16).flatten().tolist()) == {0, 1}     # rows 0-1 along x
    assert set((targets // 16).flatten().tolist()) == {2, 3}
    assert not set(context.flatten().tolist()) & set(targets.flatten().tolist())
    for column in range(16):
        j, k = divmod(column, 4)
        assert targets[column].tolist() == [(2 * 4 + j) * 4 + k, (3 * 4 + j) * 4 + k]
        assert context[column, -1].item() == (1 * 4 + j) * 4 + k    # own cell, row 1, last
        assert (0 * 4 + j) * 4 + k in context[column, :9].tolist()


def test_mask_keeps_one_window_per_patch():
    ones = torch.ones(2, 5, 1, 16, 16, 8)
    masked = proxy.mask_patch_borders(ones, _seeded(1))
    assert torch.equal(masked.sum(dim=(2, 3, 4, 5)), torch.full((2, 5), 14.0 * 14 * 7))
    occupied_x = masked[0, 0, 0].sum(dim=(1, 2)).nonzero().flatten()
    assert occupied_x.tolist() == list(range(int(occupied_x[0]), int(occupied_x[0]) + 14))


@pytest.mark.parametrize("shape", [(4, 64, 64, 32), (4, 2, 64, 64, 32), (2, 1, 64, 64)])
def test_bad_cube_shapes_raise_value_error(shape):
    bad = torch.rand(shape)
    with pytest.raises(ValueError, match="shape"):
        proxy.sample_rotation_batch(bad, _seeded())
    with pytest.raises(ValueError, match="shape"):
        proxy.sample_rpl_batch(bad, _seeded(), proxy.PatchGrid())


def test_quarter_turn_of_a_non_cubic_volume_raises_value_error(cubes):
    with pytest.raises(ValueError, match="unequal sides"):
        proxy.rotate(cubes[:2], torch.tensor([0, 4]))          # y-z plane of 64x64x32
    assert proxy.rotate(cubes[:2], torch.tensor([0, 2])).shape == cubes[:2].shape


def test_too_small_cubes_raise_value_error():
    with pytest.raises(ValueError, match="smaller than the rotation crop"):
        proxy.sample_rotation_batch(torch.rand(2, 1, 64, 64, 16), _seeded())
    with pytest.raises(ValueError, match="too small"):
        proxy.PatchGrid().extract(torch.rand(2, 1, 64, 64, 8), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="do not split"):
        proxy.split_grid(torch.rand(2, 1, 64, 64, 30), (4, 4, 4))


def test_bad_grid_settings_raise_config_error():
    with pytest.raises(ConfigError, match="multiples of 8"):
        proxy.PatchGrid(patch_size=(12, 12, 8))
    with pytest.raises(ConfigError, match="tuple of 3"):
        proxy.PatchGrid(cells=(3, 3))
    with pytest.raises(ConfigError, match="context_rows"):
        proxy.cpc_layout((4, 4, 4), 4)
