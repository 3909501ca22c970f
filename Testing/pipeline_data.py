"""Bad inputs made from real scans, and a small preprocessed folder, for the io,
preprocess and cubes tests.

Every broken file starts as a real scan from ``$SAR_DATA`` and is damaged the way files
get damaged in practice (cut short, wrong dimensionality, NaN voxels, ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SARCore.io.discovery import discover_cases
from SARCore.preprocess import get_preset, preprocess_cases


def truncated(source: Path, out: Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of ``source``'s bytes under ``out``."""
    data = source.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


def rewritten(source: Path, out: Path) -> Path:
    """``source`` re-saved in the format of ``out``'s suffix (e.g. uncompressed ``.nii``)."""
    sitk.WriteImage(sitk.ReadImage(str(source)), str(out), False)
    return out


def single_slice_2d(source: Path, out: Path) -> Path:
    image = sitk.ReadImage(str(source))
    sitk.WriteImage(image[:, :, image.GetSize()[2] // 2], str(out))
    return out


def four_d(source: Path, out: Path) -> Path:
    image = sitk.ReadImage(str(source))
    sitk.WriteImage(sitk.JoinSeries([image, image]), str(out))
    return out


def vector(source: Path, out: Path) -> Path:
    image = sitk.ReadImage(str(source))
    sitk.WriteImage(sitk.Compose(image, image), str(out))
    return out


def with_nan(source: Path, out: Path, value: float = float("nan")) -> Path:
    image = sitk.Cast(sitk.ReadImage(str(source)), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image)
    array[array.shape[0] // 2, 10:12, 10:13] = value
    damaged = sitk.GetImageFromArray(array)
    damaged.CopyInformation(image)
    sitk.WriteImage(damaged, str(out))
    return out


def constant(source: Path, out: Path) -> Path:
    image = sitk.ReadImage(str(source))
    flat = image * 0 + 7
    sitk.WriteImage(flat, str(out))
    return out


def cropped(source: Path, out: Path, size: tuple[int, int, int]) -> Path:
    image = sitk.ReadImage(str(source))
    sitk.WriteImage(sitk.RegionOfInterest(image, size, (0, 0, 0)), str(out))
    return out


def msd_dataset(root: Path, pairs: list[tuple[Path, Path]], modality: str = "CT",
                missing: list[str] = ()) -> Path:
    """An MSD-layout folder: real scans linked into ``imagesTr``/``labelsTr``."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for number, (image, label) in enumerate(pairs):
        names = [f"case_{number:03d}{_suffix(p)}" for p in (image, label)]
        os.symlink(image, root / "imagesTr" / names[0])
        os.symlink(label, root / "labelsTr" / names[1])
        training.append({"image": f"./imagesTr/{names[0]}", "label": f"./labelsTr/{names[1]}"})
    for name in missing:
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    spec = {"name": "test", "modality": {"0": modality}, "labels": {"0": "background"},
            "training": training, "test": []}
    (root / "dataset.json").write_text(json.dumps(spec), encoding="utf-8")
    return root


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix


def preprocessed_ct_and_mri(out: Path, ct: Path, mri: Path, spacing: float = 2.0) -> Path:
    """A preprocessed folder with one CT (ct preset) and one MRI (mri preset) at 2 mm."""
    for path, preset in ((ct, "ct"), (mri, "mri")):
        report = preprocess_cases(discover_cases([path]), out,
                                  get_preset(preset, target_spacing=(spacing,) * 3))
        assert report.ok, report.summary()
    return out


def array_of(path: Path) -> np.ndarray:
    """``[x, y, z]`` voxels of an image file."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).transpose(2, 1, 0)
