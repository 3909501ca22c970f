"""build_cubes on a real CT and a real MRI preprocessed at 2 mm: counts, scales, boxes,
modality labels, determinism, scale subsets, background rejection, skipping."""

from __future__ import annotations

import numpy as np
import pipeline_data
import pytest

from SARCore.cubes import CubeConfig, build_cubes
from SARCore.cubes.generator import resize_cube
from SARCore.cubes.store import read_index
from SARCore.errors import ConfigError, DataError
from SARCore.io.discovery import discover_cases
from SARCore.preprocess import get_preset, preprocess_cases
from SARCore.preprocess.manifest import load_manifest

SMALL = CubeConfig(per_volume=(2, 2, 4), shard_size=7)


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory, ct_small, mri_tcga):
    return pipeline_data.preprocessed_ct_and_mri(tmp_path_factory.mktemp("pre"), ct_small,
                                                 mri_tcga)


@pytest.fixture(scope="module")
def store(preprocessed, tmp_path_factory):
    out = tmp_path_factory.mktemp("cubes")
    return build_cubes(preprocessed, out, SMALL), out


def _shards(root, info):
    return np.concatenate([np.load(root / name) for name in info.shards])


def test_counts_ratio_and_modalities(store):
    info, root = store
    assert info.count == 16 and info.cases == ["example_ct_sm", "brain1_image"]
    assert info.per_scale == {0: 4, 1: 4, 2: 8}  # 1:1:2
    assert info.per_modality == {0: 8, 1: 8}
    index = read_index(root)
    for case in (0, 1):
        scales = index["scale"][index["case"] == case]
        assert np.bincount(scales).tolist() == [2, 2, 4]
    assert index["modality"][index["case"] == 0].tolist() == [0] * 8  # ct preset -> CT
    assert index["modality"][index["case"] == 1].tolist() == [1] * 8  # mri preset -> MRI


def test_shards_hold_float16_cubes_in_unit_range(store):
    info, root = store
    assert [len(np.load(root / n, mmap_mode="r")) for n in info.shards] == [7, 7, 2]
    cubes = _shards(root, info)
    assert cubes.shape == (16, 64, 64, 32) and cubes.dtype == np.float16
    assert cubes.min() >= 0.0 and cubes.max() <= 1.0 and cubes.astype(np.float32).std() > 0.05


def test_box_sides_follow_the_scale(store, preprocessed):
    """Zoom rule at 2 mm isotropic: 2:2:1 boxes, in-plane side = the scale's fraction of
    the in-plane extent (with jitter), unless shrunk as a whole to fit the volume."""
    _, root = store
    index = read_index(root)
    shapes = {name: entry["preprocessed"]["size"] for name, entry in
              load_manifest(preprocessed)["cases"].items()}
    names = ["example_ct_sm", "brain1_image"]
    for scale, case, box in zip(index["scale"], index["case"], index["box"]):
        shape = np.array(shapes[names[case]])
        start, side = box[:3], box[3:]
        assert side[0] == side[1] == 2 * side[2]  # isotropic grid: the aspect is exact
        fraction = 0.5 ** (scale + 1)
        ratio = side[0] / min(shape[:2])
        fits = side[2] == shape[2] or np.any(side == shape)
        assert ratio <= fraction * 1.1 + 2 / shape[0]
        assert fits or ratio >= fraction * 0.9 - 2 / shape[0]
        assert np.all(start >= 0) and np.all(start + side <= shape)


def test_same_seed_same_cubes_other_seed_other_cubes(store, preprocessed, tmp_path):
    info, root = store
    again = build_cubes(preprocessed, tmp_path / "again", SMALL)
    assert np.array_equal(_shards(tmp_path / "again", again), _shards(root, info))
    other = build_cubes(preprocessed, tmp_path / "other",
                        CubeConfig(per_volume=(2, 2, 4), shard_size=7, seed=1))
    assert not np.array_equal(_shards(tmp_path / "other", other), _shards(root, info))


def test_scale_subset_keeps_the_same_crops(store, preprocessed, tmp_path):
    info, root = store
    subset = build_cubes(preprocessed, tmp_path / "sub",
                         CubeConfig(per_volume=(2, 2, 4), scales=(0, 2), shard_size=7))
    assert subset.per_scale == {0: 4, 2: 8} and subset.count == 12
    full_index, sub_index = read_index(root), read_index(tmp_path / "sub")
    keep = np.isin(full_index["scale"], (0, 2))
    assert np.array_equal(sub_index["box"], full_index["box"][keep])
    assert np.array_equal(_shards(tmp_path / "sub", subset), _shards(root, info)[keep])


def test_background_rejection(preprocessed, tmp_path):
    loose = build_cubes(preprocessed, tmp_path / "loose",
                        CubeConfig(per_volume=(2, 2, 4), min_foreground=0.0))
    strict = build_cubes(preprocessed, tmp_path / "strict",
                         CubeConfig(per_volume=(2, 2, 4), min_foreground=0.8))
    loose_fg = read_index(tmp_path / "loose")["foreground"]
    strict_fg = read_index(tmp_path / "strict")["foreground"]
    assert np.count_nonzero(loose_fg < 0.8) >= 1  # the MRI's background is real
    assert strict.fallbacks == np.count_nonzero(strict_fg < 0.8)
    assert np.count_nonzero(strict_fg < 0.8) < np.count_nonzero(loose_fg < 0.8)
    assert loose.fallbacks == 0


def test_recorded_foreground_matches_the_volume(store, preprocessed):
    _, root = store
    index = read_index(root)
    volume = pipeline_data.array_of(preprocessed / "brain1_image.nii.gz")
    for case, box, fraction in zip(index["case"], index["box"], index["foreground"]):
        if case == 1:
            region = volume[tuple(slice(a, a + n) for a, n in zip(box[:3], box[3:]))]
            assert fraction == pytest.approx(np.mean(region > 0.01), abs=1e-6)


def test_up_to_date_store_is_skipped_and_changes_rebuild(store, preprocessed):
    info, root = store
    stamps = {n: (root / n).stat().st_mtime_ns for n in info.shards}
    assert build_cubes(preprocessed, root, SMALL).skipped
    assert {n: (root / n).stat().st_mtime_ns for n in info.shards} == stamps
    changed = build_cubes(preprocessed, root, CubeConfig(per_volume=(1, 1, 2), shard_size=7))
    assert not changed.skipped and changed.count == 8
    assert sorted(p.name for p in root.glob("cubes_*.npy")) == ["cubes_00000.npy",
                                                                "cubes_00001.npy"]
    build_cubes(preprocessed, root, SMALL)  # leave the module's store as it was


def test_zscored_volumes_are_refused(brats2015_cases, tmp_path):
    preprocess_cases(discover_cases([brats2015_cases[0]]), tmp_path / "pre",
                     get_preset("brats", target_spacing=(3.0, 3.0, 3.0), min_shape=(32, 32, 32)))
    with pytest.raises(DataError, match="not scaled to \\[0, 1\\].*brats"):
        build_cubes(tmp_path / "pre", tmp_path / "cubes", SMALL)


def test_not_a_preprocessed_folder(tmp_path):
    with pytest.raises(DataError, match="manifest.json"):
        build_cubes(tmp_path, tmp_path / "cubes", SMALL)


def test_resize_cube():
    crop = np.random.default_rng(0).random((130, 20, 70)).astype(np.float32)
    cube = resize_cube(crop, (64, 64, 32))
    assert cube.shape == (64, 64, 32) and cube.dtype == np.float32
    assert crop.min() <= cube.min() and cube.max() <= crop.max()
    assert np.allclose(resize_cube(np.full((9, 200, 33), 0.25, np.float32), (64, 64, 32)), 0.25)


@pytest.mark.parametrize("settings, words", [
    ({"per_volume": (1, 1)}, "per_volume"), ({"scales": (3,)}, "scales"),
    ({"scales": ()}, "scales"), ({"min_foreground": 1.5}, "min_foreground"),
    ({"per_volume": (0, 1, 0), "scales": (0, 2)}, "no cubes"), ({"jitter": 0.6}, "jitter"),
])
def test_bad_config(settings, words):
    with pytest.raises(ConfigError, match=words):
        CubeConfig(**settings)
