"""Real pre-training inputs for the tests, built once per session with the package's API.

Two CT scans (TotalSegmentator example, ITKElastix chest CT) and two MRIs (TCGA-GBM T1
post-contrast) are preprocessed at 3 mm (the MRI's 6.5 mm slices still give a 64x64x32
cube there) with the ``ct``/``mri`` presets, then cropped into multi-scale cube stores:
two cases per modality, so splitting by case leaves one case of each for validation.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from SARCore.cubes import CubeConfig, build_cubes
from SARCore.io.discovery import discover_cases
from SARCore.preprocess import get_preset, preprocess_cases

SPACING = (3.0, 3.0, 3.0)


def preprocess_pretraining_scans(data: Path, work: Path) -> list[Path]:
    """``work/ct`` and ``work/mri``: 2 real CTs and 2 real MRIs at 3 mm, in [0, 1]."""
    sources = {"ct": [data / "ct" / "totalsegmentator_example" / "example_ct.nii.gz",
                      data / "ct" / "chest_ct" / "chest_ct_256x256x141.nii.gz"],
               "mri": [data / "tcga_gbm_t1gd" / "brain1_image.nrrd",
                       data / "tcga_gbm_t1gd" / "brain2_image.nrrd"]}
    folders = []
    for preset, files in sources.items():
        report = preprocess_cases(discover_cases(files), work / preset,
                                  get_preset(preset, target_spacing=SPACING))
        if not report.ok:
            raise RuntimeError(report.summary())
        folders.append(work / preset)
    return folders


def make_cube_store(folders: list[Path], out: Path, per_volume: tuple[int, int, int],
                    cube_shape: tuple[int, int, int]) -> Path:
    build_cubes(folders, out, CubeConfig(per_volume=per_volume, seed=0, cube_shape=cube_shape))
    return out


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Small 3D convolutions run several times faster on one thread of a shared 2-core
    machine than on two (OpenMP barriers wait for descheduled threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def subprocess_env() -> dict[str, str]:
    """Environment for CLI subprocesses: one thread each, the repository importable."""
    repo = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": repo + (os.pathsep + path if path else "")}
