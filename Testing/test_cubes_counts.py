"""Cube counts per data entry, printed and kept in ``cubes.json`` with the presets
(issue 9, protocol fix 3), and Models Genesis' own single-scale crops."""

from __future__ import annotations

import json

import numpy as np
import pipeline_data
import pytest

from SARCore.cli import main
from SARCore.cubes import CubeConfig, build_cubes
from SARCore.cubes.store import read_index


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory, ct_small, mri_tcga):
    ct = pipeline_data.preprocessed_ct_and_mri(tmp_path_factory.mktemp("a"), ct_small, mri_tcga)
    return ct


def test_per_folder_counts_and_manifest(tmp_path, ct_small, mri_tcga, capsys):
    ct_dir, mri_dir = tmp_path / "ct", tmp_path / "mri"
    from SARCore.io.discovery import discover_cases
    from SARCore.preprocess import get_preset, preprocess_cases

    for path, folder, preset in ((ct_small, ct_dir, "ct"), (mri_tcga, mri_dir, "mri")):
        preprocess_cases(discover_cases([path]), folder,
                         get_preset(preset, target_spacing=(3.0, 3.0, 3.0), min_shape=(8, 8, 8)))
    config = CubeConfig(per_volume=(1, 1, 2), cube_shape=(16, 16, 8))
    info = build_cubes([ct_dir, mri_dir], tmp_path / "cubes", config,
                       per_volume=[(2, 2, 4), None])
    assert info.per_modality == {0: 8, 1: 4}  # the CT folder's own counts, the MRI default
    assert info.per_scale == {0: 3, 1: 3, 2: 6}
    meta = json.loads((tmp_path / "cubes" / "cubes.json").read_text())
    assert meta["counts"] == {"scale": {"large": 3, "medium": 3, "small": 6},
                              "modality": {"CT": 8, "MRI": 4}}
    assert [p["name"] for p in meta["preprocess"]] == ["ct", "mri"]
    code = main(["cubes", str(ct_dir), str(mri_dir), "--out", str(tmp_path / "c2"),
                 "--per-volume", "1", "1", "2", "--progress", "json"])
    assert code == 0
    said = [json.loads(x)["message"] for x in capsys.readouterr().out.splitlines()
            if '"log"' in x]
    assert any("per scale: large" in m and "per modality: CT 4, MRI 4" in m for m in said)


def test_mg_crops_are_cube_sized_and_not_resized(tmp_path, two_folders):
    config = CubeConfig(per_volume=(3, 0, 0), scales=(0,), crop_rule="mg")
    build_cubes(two_folders, tmp_path / "mg", config)
    boxes = read_index(tmp_path / "mg")["box"]
    assert np.all(boxes[:, 3:] == np.array([64, 64, 32]))
