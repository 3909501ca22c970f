"""``sar segment --probabilities [--tta]``: confidence maps on the scan's grid, and the
Apple GPU device (``--device mps``) refused or explained clearly where it cannot run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from inference_models import calibrated_model, crop_to_file

from SARCore.errors import ConfigError
from SARCore.inference.batch import confidence_paths
from SARCore.inference.segment import SegmentOptions
from SARCore.training.device import mps_available, resolve_device, unsupported_on_device

REPO = Path(__file__).resolve().parents[1]


def _segment(*args: str) -> tuple[int, dict, str]:
    done = subprocess.run([sys.executable, "-m", "SARCore", "segment", *args,
                           "--progress", "json"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    final = next((e for e in events if e["event"] == "done"), {})
    return done.returncode, final, done.stderr


@pytest.fixture(scope="module")
def case(tmp_path_factory, brats_flair) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("uncertainty")
    crop = crop_to_file(brats_flair, folder / "crop.nii.gz", (56, 96, 56), (48, 56, 32))
    return crop, calibrated_model(folder / "m.sarmodel", [crop])


def test_probability_and_flip_disagreement_maps(tmp_path, case) -> None:
    crop, model = case
    code, done, stderr = _segment(str(crop), "--model", str(model), "--out", str(tmp_path),
                                  "--device", "cpu", "--probabilities", "--tta")
    assert code == 0, stderr
    [output] = done["outputs"]
    label = sitk.ReadImage(output["label"])
    probability = sitk.ReadImage(output["probability"])
    disagreement = sitk.ReadImage(output["disagreement"])
    for image in (probability, disagreement):
        assert image.GetSize() == label.GetSize() == (48, 56, 32)
        assert image.GetSpacing() == pytest.approx(label.GetSpacing())
        assert image.GetOrigin() == pytest.approx(label.GetOrigin())
    p = sitk.GetArrayFromImage(probability)
    d = sitk.GetArrayFromImage(disagreement)
    labels = sitk.GetArrayFromImage(label)
    assert 0.0 <= p.min() and p.max() <= 1.0 and 0.0 <= d.min() and d.max() <= 0.5
    assert np.array_equal(labels > 0, p >= 0.5)  # the same decision as the label map
    assert 0 < (labels > 0).mean() < 1 and d.max() > 0  # flips of a random net disagree


def test_probabilities_without_tta_write_no_disagreement(tmp_path) -> None:
    paths = confidence_paths(tmp_path, "case", SegmentOptions(probabilities=True))
    assert paths == {"probability": tmp_path / "case_probability.nii.gz"}
    both = confidence_paths(tmp_path, "case", SegmentOptions(probabilities=True, tta=True))
    assert set(both) == {"probability", "disagreement"}


def test_mps_device_is_explained() -> None:
    if not mps_available():
        with pytest.raises(ConfigError, match="Apple GPU"):
            resolve_device("mps")
    missing = NotImplementedError("The operator 'aten::max_pool3d_with_indices' is not "
                                  "currently implemented for the MPS device.")
    clear = unsupported_on_device(missing, torch.device("mps"))
    assert isinstance(clear, ConfigError) and "not supported on the Apple GPU" in str(clear)
    assert "--device cpu" in str(clear)
    assert unsupported_on_device(missing, torch.device("cpu")) is None
    assert unsupported_on_device(ValueError("mps"), torch.device("mps")) is None


def test_segment_cli_accepts_mps_and_fails_clearly_without_one(tmp_path, case) -> None:
    if mps_available():
        pytest.skip("this machine has an Apple GPU; the refusal cannot be shown here")
    crop, model = case
    code, _, stderr = _segment(str(crop), "--model", str(model), "--out", str(tmp_path),
                               "--device", "mps")
    assert code != 0 and "Apple GPU" in stderr and "Traceback" not in stderr
