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
