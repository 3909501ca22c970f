"""CubeDataset over a real cube store (2 CT + 2 MRI scans): items, memory mapping,
filters and splits by case."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from SARCore.cubes import CubeConfig, CubeDataset, build_cubes, split_cases
from SARCore.errors import DataError
from SARCore.io.discovery import discover_cases
from SARCore.preprocess import get_preset, preprocess_cases


@pytest.fixture(scope="module")
def root(tmp_path_factory, ct_small, ct_lung, data_dir):
    pre = tmp_path_factory.mktemp("pre")
    mri = [data_dir / "tcga_gbm_t1gd" / f"brain{i}_image.nrrd" for i in (1, 2)]
    for paths, preset in (([ct_small, ct_lung], "ct"), (mri, "mri")):
        report = preprocess_cases(discover_cases(paths), pre,
                                  get_preset(preset, target_spacing=(2.0, 2.0, 2.0)))
        assert report.ok, report.summary()
    out = tmp_path_factory.mktemp("cubes")
    build_cubes(pre, out, CubeConfig(per_volume=(1, 1, 2), shard_size=5))
    return out


def test_items(root):
    dataset = CubeDataset(root)
    assert len(dataset) == 16
    item = dataset[7]
    assert item["cube"].shape == (1, 64, 64, 32) and item["cube"].dtype == torch.float32
    assert item["scale"].dtype == torch.int64 and item["modality"].dtype == torch.int64
    assert isinstance(item["case"], int)
    shard = np.load(root / "cubes_00001.npy")  # cube 7 = shard 1, row 2
    assert torch.equal(item["cube"][0], torch.from_numpy(shard[2].astype(np.float32)))
    assert [int(dataset[i]["scale"]) for i in range(4)] == [0, 1, 2, 2]


def test_shards_are_memory_mapped_and_not_pickled(root):
    dataset = CubeDataset(root)
    dataset[0]
    dataset[15]
    assert all(isinstance(m, np.memmap) for m in dataset._shards.values())
    assert len(dataset._shards) == 2  # only the shards touched, never all of them
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._shards == {} and torch.equal(copy[15]["cube"], dataset[15]["cube"])


def test_filters(root):
    assert len(CubeDataset(root, scales=[2])) == 8
    assert set(CubeDataset(root, scales=[0, 1]).scales.tolist()) == {0, 1}
    ct = CubeDataset(root, modalities=["CT"])
    assert len(ct) == 8 and set(ct.modalities.tolist()) == {0}
    assert np.array_equal(CubeDataset(root, modalities=[1]).ids, CubeDataset(root, modalities=["mri"]).ids)
    assert set(CubeDataset(root, cases=[2]).cases.tolist()) == {2}


def test_split_by_case(root):
    dataset = CubeDataset(root)
    train, val = dataset.split(0.25, seed=3)
    assert len(train) + len(val) == len(dataset)
    assert not set(train.cases.tolist()) & set(val.cases.tolist())
    assert set(val.modalities.tolist()) == {0, 1}  # one case of each modality held out
    again_train, again_val = dataset.split(0.25, seed=3)
    assert np.array_equal(again_val.ids, val.ids)
    batch = next(iter(DataLoader(train, batch_size=4, shuffle=False)))
    assert batch["cube"].shape == (4, 1, 64, 64, 32) and batch["scale"].shape == (4,)


def test_split_cases_edge_cases():
    cases = np.array([0, 0, 1, 1, 2])
    modalities = np.array([0, 0, 0, 0, 1])
    train, val = split_cases(cases, modalities, 0.0)
    assert (train, val) == ([0, 1, 2], [])
    train, val = split_cases(cases, modalities, 0.9)
    assert len(val) == 1 and 2 in train  # a lone case of a modality stays in training
    with pytest.raises(ValueError, match="val_fraction"):
        split_cases(cases, modalities, 1.0)


def test_not_a_store(tmp_path):
    with pytest.raises(DataError, match="cubes.json"):
        CubeDataset(tmp_path)
