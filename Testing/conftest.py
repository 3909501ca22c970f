"""Shared fixtures: paths to the real scans in ``$SAR_DATA`` (default ``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SAR_DATA", REPO.parent / "shared" / "data")).resolve()


def pytest_configure(config: pytest.Config) -> None:
    if not DATA.is_dir():
        raise pytest.UsageError(f"real scans not found at {DATA}; set SAR_DATA")
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def brats2015_cases() -> list[Path]:
    """The 4 BRATS 2015 case folders (FLAIR, T1c, brainmask, OTMultiClass labels)."""
    return sorted((DATA / "brats2015").glob("brats_2013_pat*"))


@pytest.fixture(scope="session")
def ct_small() -> Path:
    """Thorax-abdomen CT in HU, 122x101x30 at 3 mm (TotalSegmentator example)."""
    return DATA / "ct" / "totalsegmentator_example" / "example_ct_sm.nii.gz"


@pytest.fixture(scope="session")
def ct_lung() -> Path:
    """Single-lung CT crop in HU, 115x157x129 (MHA)."""
    return DATA / "ct" / "lung_ct" / "3DCT_lung.mha"


@pytest.fixture(scope="session")
def mri_tcga() -> Path:
    """T1 post-contrast GBM MRI, int16 NRRD, 256x256x25 at 6.5 mm slices."""
    return DATA / "tcga_gbm_t1gd" / "brain1_image.nrrd"


@pytest.fixture(scope="session")
def brats_flair() -> Path:
    return DATA / "brats2015" / "brats_2013_pat0001_1" / "Flair_subtrMeanDivStd.nii.gz"


@pytest.fixture(scope="session")
def small_pretrained_model(small_real_cubes_dir: Path,
                           tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SAR model (width_divisor 8) pre-trained 2 steps on the real CT + MRI cubes."""
    from finetune_data import make_pretrained_model

    return make_pretrained_model(small_real_cubes_dir, tmp_path_factory.mktemp("pretrained"))


@pytest.fixture(scope="session")
def brats_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cache root holding the 4 BRATS 2015 cases preprocessed at 4 mm (FLAIR, whole tumor);
    fine-tuning tests pass it as ``cache_dir`` so the scans are resampled once per session."""
    from finetune_data import fill_brats_cache

    return fill_brats_cache(DATA, tmp_path_factory.mktemp("brats_cache"))



@pytest.fixture(scope="session")
def real_pretrain_preprocessed(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """[ct_dir, mri_dir]: 2 real CTs and 2 real MRIs preprocessed at 3 mm (ct/mri presets)."""
    from pretrain_data import preprocess_pretraining_scans

    return preprocess_pretraining_scans(DATA, tmp_path_factory.mktemp("pretrain_scans"))


@pytest.fixture(scope="session")
def real_cubes_dir(real_pretrain_preprocessed: list[Path],
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cube store of real CT + MRI: 64x64x32 cubes, 1/1/2 per volume (16 cubes, 4 cases)."""
    from pretrain_data import make_cube_store

    return make_cube_store(real_pretrain_preprocessed, tmp_path_factory.mktemp("cubes"),
                           (1, 1, 2), (64, 64, 32))


@pytest.fixture(scope="session")
def small_real_cubes_dir(real_pretrain_preprocessed: list[Path],
                         tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same scans as 32x32x16 cubes, 4/4/8 per volume (64 cubes): 8x cheaper steps for
    tests that train for dozens of steps (any size divisible by 8 fits the U-Net)."""
    from pretrain_data import make_cube_store

    return make_cube_store(real_pretrain_preprocessed, tmp_path_factory.mktemp("small_cubes"),
                           (4, 4, 8), (32, 32, 16))

# Slicer module tests (Testing/test_slicer_*.py): a fresh headless MRML scene per test and
# one small real segmentation model per session, from Testing/conftest_slicer.py.
from conftest_slicer import headless_scene, tiny_model  # noqa: E402, F401
