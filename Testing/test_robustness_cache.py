"""The fine-tuning volume cache is trusted only while its files keep their checksums.

A cached ``.nii.gz`` that was truncated (a full disk, a killed copy) or replaced by
another file must be rebuilt from the source scan, not read: ITK fills a truncated file
with zeros, so training would see wrong data without a word.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from finetune_data import coarse_config

from SARCore.finetune.data import cache_folder, find_labeled_cases, load_volumes
from SARCore.finetune.setup import resolve_preset
from SARCore.io.checksum import sha256_file


def _setup(data_dir: Path, cache_root: Path):
    config = coarse_config(data_dir)
    cases = find_labeled_cases(config.data, config.sequences)
    preset = resolve_preset(config, None, "MRI")
    folder = cache_folder(cache_root, preset, config.classes, config.sequences)
    return cases, preset, config.classes, folder


@pytest.fixture()
def cache_copy(brats_cache_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session's BRATS cache, free to damage."""
    return Path(shutil.copytree(brats_cache_dir, tmp_path / "cache"))


def test_cache_records_a_checksum_per_case(data_dir: Path, cache_copy: Path) -> None:
    cases, _, _, folder = _setup(data_dir, cache_copy)
    for case in cases:
        record = json.loads((folder / f"{case.case_id}.sha256.json").read_text())
        names = [f"{case.case_id}_c0.nii.gz", f"{case.case_id}_label.nii.gz"]
        assert sorted(record) == sorted(names)
        assert all(record[n] == sha256_file(folder / n) for n in names)


def test_truncated_or_replaced_cache_files_are_rebuilt(
        data_dir: Path, cache_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    cases, preset, classes, folder = _setup(data_dir, cache_copy)
    good = load_volumes(cases, preset, classes, folder)
    first, second, third = (c.case_id for c in cases[:3])
    originals = {p.name: p.read_bytes() for p in folder.glob("*.nii.gz")}
    image = folder / f"{first}_c0.nii.gz"
    image.write_bytes(originals[image.name][: len(originals[image.name]) // 2])  # truncated
    label = folder / f"{second}_label.nii.gz"
    label.write_bytes(originals[f"{third}_label.nii.gz"])  # a valid file, the wrong one
    stale = folder / f"{third}.sha256.json"
    stale.unlink()  # a cache from before the records: rebuilt once

    with caplog.at_level(logging.WARNING, logger="SARCore.finetune.data"):
        again = load_volumes(cases, preset, classes, folder)

    rebuilt = {r.getMessage().split()[2] for r in caplog.records if "rebuilt" in r.getMessage()}
    assert rebuilt == {first, second, third}
    assert any(f"{image.name} changed" in r.getMessage() for r in caplog.records)
    for case_id, volume in good.items():  # training sees the right data again
        np.testing.assert_array_equal(again[case_id].image, volume.image)
        np.testing.assert_array_equal(again[case_id].label, volume.label)
    assert image.read_bytes() == originals[image.name]
    assert label.read_bytes() == originals[label.name]
    assert stale.is_file()


def test_intact_cache_is_read_not_rebuilt(data_dir: Path, cache_copy: Path) -> None:
    cases, preset, classes, folder = _setup(data_dir, cache_copy)
    before = {p: p.stat().st_mtime_ns for p in folder.glob("*.nii.gz")}
    load_volumes(cases, preset, classes, folder)
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.nii.gz")} == before


def test_unreadable_record_means_rebuild(data_dir: Path, cache_copy: Path) -> None:
    cases, preset, classes, folder = _setup(data_dir, cache_copy)
    record = folder / f"{cases[0].case_id}.sha256.json"
    record.write_text("{not json")
    image = folder / f"{cases[0].case_id}_c0.nii.gz"
    before = image.stat().st_mtime_ns
    load_volumes(cases[:1], preset, classes, folder)
    assert image.stat().st_mtime_ns != before
    assert json.loads(record.read_text())[image.name] == sha256_file(image)
