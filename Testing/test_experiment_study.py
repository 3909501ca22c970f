"""The study machinery end to end on the real scans, test-sized: leave-one-case-out x two
seeds, a paired comparison with its plain sentence in report.md, and the exported best
model that ``sar segment`` uses as it is."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pretrain_data import one_torch_thread
from test_experiment_runner import TINY

from SARCore.cli import main
from SARCore.experiment import load_experiment, run_experiment
from SARCore.models.modelfile import read_header


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def _study() -> dict[str, Any]:
    data = copy.deepcopy(TINY)
    data["name"] = "tinystudy"
    data["toy_run"] = False
    finetuning = data["finetuning"]
    for key in ("trials", "test_ratio"):
        finetuning.pop(key)
    finetuning.update(label_fractions=[1.0], fraction_inits=[], folds=4, seeds=[0, 1],
                      max_steps=1, val_ratio=0.0)
    data["study"] = {"reference": "genesis", "against": ["scratch"],
                     "export": "best.sarmodel", "target_dice": 0.8}
    return data


def test_leave_one_out_with_seeds_pairs_and_exports(data_dir: Path, tmp_path: Path,
                                                    headless_scene) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_study()), encoding="utf-8")
    out = tmp_path / "out"
    result = run_experiment(load_experiment(path), out, data_dir)
    assert "finetune-genesis-all-seed1" in result.ran and "finetune-scratch-all-seed0" in result.ran
    study = json.loads((out / "evaluation" / "study.json").read_text())
    dice = study["fractions"]["1.0"]["dice"]
    cases = sorted(p.rsplit("/", 1)[1] for p in dice["scratch"])
    assert cases == sorted([f"brats_2013_pat000{i}_1" for i in range(1, 5)] * 2)  # LOO x 2
    assert set(dice["genesis"]) == set(dice["scratch"])  # same pairs for both inits
    comparison = study["fractions"]["1.0"]["comparisons"]["scratch"]
    assert comparison["n"] == 8 and comparison["sentence"].split(":")[0] in ("Yes", "No",
                                                                            "Not shown")
    report = result.report.read_text(encoding="utf-8")
    assert "## Study: what does pre-training buy here?" in report and "**Answer.**" in report
    assert "the target of 0.80" in report and "seed1/fold_3/" in report
    header = read_header(out / "best.sarmodel")
    assert header["preprocess"]["name"] == "brats" and header["classes"][0]["name"] == "tumor"
    assert len(header["classes"][0]["color"]) == 3 and header["study"]["init"] == study["best"]
    scan = data_dir / "brats2015" / "brats_2013_pat0001_1" / "Flair_subtrMeanDivStd.nii.gz"
    assert main(["segment", str(scan), "--model", str(out / "best.sarmodel"), "--out",
                 str(tmp_path / "seg"), "--device", "cpu", "--progress", "none"]) == 0
    assert (tmp_path / "seg" / "Flair_subtrMeanDivStd.seg.nrrd").is_file()

    # The Slicer module takes the same file as it is: a scan loaded as a real MRML volume
    # node, segmented through the module's logic, gives a node whose segment carries the
    # study model's class name and color and the engine's voxels.
    from conftest_slicer import read_on_node

    from SARSegmentationLib import MrmlIO
    from SARSegmentationLib.Logic import SARLogic
    from SARSegmentationLib.SegmentationLogic import segmentInfo

    volume = MrmlIO.loadVolume(headless_scene, scan)
    node = SARLogic(headless_scene).process(volume, out / "best.sarmodel", device="cpu")
    segments = segmentInfo(node)
    assert [s["name"] for s in segments] == ["tumor"]
    assert all(abs(a - b) < 1e-6 for a, b in zip(segments[0]["color"],
                                                 header["classes"][0]["color"]))
    engine = read_on_node(tmp_path / "seg" / "Flair_subtrMeanDivStd_label.nii.gz", volume)
    import slicer

    label = headless_scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportAllSegmentsToLabelmapNode(
        node, label, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    ours = slicer.util.arrayFromVolume(label) > 0
    assert ours.shape == engine.shape and (ours == (engine > 0)).all()
