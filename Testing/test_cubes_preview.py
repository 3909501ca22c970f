"""Preview PNGs from a real cube store with the real Models Genesis corruption, through
the ``cubes --preview`` and ``preview`` verbs."""

from __future__ import annotations

import json

import numpy as np
import pipeline_data
from matplotlib.image import imread

from SARCore.cli import main
from SARCore.cubes import CubeDataset
from SARCore.cubes.preview import pick_cubes


def test_cubes_verb_with_preview_and_preview_verb(ct_small, mri_tcga, tmp_path, capsys):
    pre = pipeline_data.preprocessed_ct_and_mri(tmp_path / "pre", ct_small, mri_tcga)
    store, first = tmp_path / "cubes", tmp_path / "first.png"
    assert main(["cubes", str(pre), "--out", str(store), "--per-volume", "2", "2", "4",
                 "--seed", "5", "--preview", str(first), "--progress", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    done = events[-1]
    assert done["event"] == "done" and done["count"] == 16
    assert done["per_scale"] == {"0": 4, "1": 4, "2": 8}
    image = imread(first)
    assert image.shape[:2] == (750, 1320)  # 3 scales x (3 cubes + 3 corrupted)
    assert image[..., :3].std() > 0.1

    second = tmp_path / "second.png"
    assert main(["preview", str(store), "--out", str(second), "--per-scale", "1",
                 "--seed", "1", "--progress", "none"]) == 0
    assert imread(second).shape[:2] == (750, 440)
    assert not list(tmp_path.glob(".tmp-*"))


def test_pick_cubes_covers_every_scale(ct_small, mri_tcga, tmp_path):
    pre = pipeline_data.preprocessed_ct_and_mri(tmp_path / "pre", ct_small, mri_tcga)
    assert main(["cubes", str(pre), "--out", str(tmp_path / "c"), "--per-volume", "1", "1",
                 "2", "--scales", "0", "2", "--progress", "none"]) == 0
    dataset = CubeDataset(tmp_path / "c")
    picks = pick_cubes(dataset, 3, seed=0)
    assert sorted(picks) == [0, 2] and len(picks[0]) == 2 and len(picks[2]) == 3
    assert all(int(dataset[p]["scale"]) == s for s, ps in picks.items() for p in ps)
    assert picks == pick_cubes(dataset, 3, seed=0)
    assert np.all(np.diff(picks[2]) > 0)


def test_corrupted_panels_name_their_transforms() -> None:
    import torch

    from SARCore.corruptions import ModelsGenesisCorruption
    from SARCore.cubes.preview import transform_names

    batch = torch.rand(16, 1, 32, 32, 16)
    record = ModelsGenesisCorruption().corrupt(batch, generator=torch.Generator().manual_seed(3)
                                                ).record
    names = transform_names(record)
    assert len(names) == 16
    for i, name in enumerate(names):
        assert ("flip" in name) == bool(record.flip_count[i] > 0)
        assert ("shuffle" in name) == bool(record.shuffled[i])
        assert ("nonlinear" in name) == bool(record.nonlinear[i])
        assert ("in-painting" in name) == bool(record.inner_painted[i])
        assert ("out-painting" in name) == bool(record.outer_painted[i])
    assert len(set(names)) > 1  # different samples got different transforms
