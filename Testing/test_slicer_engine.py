"""The module's jobs against the real SARCore engine: commands the engine accepts,
real failures and cancels, the models folder, the device probe."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import conftest_slicer  # noqa: F401  (puts the module folder on sys.path)
import numpy as np
import pytest

from SARCore.cli import build_parser
from SARCore.errors import ModelFileError
from SARSegmentationLib import Commands, DeviceInfo
from SARSegmentationLib.JobRunner import JobStatus
from SARSegmentationLib.Logic import SARLogic
from SARSegmentationLib.ModelRegistry import ModelRegistry, readHeader
from SARSegmentationLib.Progress import PROGRESS


def _pgid_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_commands_are_accepted_by_the_engine_parser(tmp_path) -> None:
    cubes = tmp_path / "cubes"
    cubes.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    model = tmp_path / "m.sarmodel"
    model.write_bytes(b"x")
    jobs = [Commands.preprocessJob(["a.nii.gz", "folder"], tmp_path / "pre", "brats", "MRI"),
            Commands.cubesJob(tmp_path, tmp_path / "cubes-out"),
            Commands.pretrainJob(cubes, "sar", tmp_path / "pt", 3, "cpu", 4, resume=True),
            Commands.finetuneJob(data, str(model), tmp_path / "ft", 5, "auto", 0.2, True,
                                 labels="tumor:1,edema:2", freshHead=True)]
    parser = build_parser()
    for job in jobs:
        assert job.command[1:3] == ["-m", "SARCore"]
        args = parser.parse_args(job.command[3:])
        assert args.verb == job.verb and args.progress == "json"
    ft = parser.parse_args(jobs[3].command[3:])
    assert (ft.label_fraction, ft.epochs, ft.resume, ft.labels, ft.fresh_head) == (
        0.2, 5, True, "tumor:1,edema:2", True)
    scratch = Commands.finetuneJob(data, "scratch", tmp_path / "ft2", 5, freshHead=True)
    assert "--fresh-head" not in scratch.command  # nothing pre-trained to leave out
    pt = parser.parse_args(jobs[2].command[3:])
    assert (pt.method, pt.width_divisor, pt.epochs, pt.cubes) == ("sar", 4, 3, cubes)


def test_bad_options_are_refused_before_any_process(tmp_path) -> None:
    from SARCore.errors import ConfigError

    with pytest.raises(ConfigError, match="method must be one of"):
        Commands.pretrainJob(tmp_path, "simclr", tmp_path / "o", 1)
    with pytest.raises(ConfigError, match="label fraction"):
        Commands.finetuneJob(tmp_path, "scratch", tmp_path / "o", 1, labelFraction=1.5)
    with pytest.raises(ConfigError, match="pre-trained model not found"):
        Commands.finetuneJob(tmp_path, str(tmp_path / "none.sarmodel"), tmp_path / "o", 1)


def test_failing_engine_job_reports_the_engine_message(tmp_path) -> None:
    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file")
    job = Commands.preprocessJob([bad], tmp_path / "out", "ct", "CT")
    runner = SARLogic.startJob(job)
    result = runner.wait(timeout=300)
    assert result.status is JobStatus.FAILED and result.exitCode == 1
    assert "scan.nii.gz" in result.message
    assert not list(tmp_path.rglob(".tmp-*"))


def test_cancel_ends_a_real_training_run_without_partial_output(tmp_path, brats2015_cases):
    job = Commands.finetuneJob(brats2015_cases[0].parent, "scratch", tmp_path / "ft", 1000,
                               "cpu")
    runner = SARLogic.startJob(job)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(e.kind == PROGRESS for e in runner.poll()):
        time.sleep(0.1)
    assert runner.running, runner.result
    assert _pgid_members(runner.pid)
    started = time.monotonic()
    runner.cancel()
    while runner.running:
        runner.poll()
        time.sleep(0.05)
    assert time.monotonic() - started < 8
    assert runner.result.status is JobStatus.CANCELLED
    assert not _pgid_members(runner.pid), "an engine process outlived the cancel"
    out = tmp_path / "ft"
    assert not list(out.rglob(".tmp-*")) and not (out / "model.sarmodel").exists()


def test_model_registry_lists_imports_and_rejects(tmp_path, tiny_model) -> None:
    folder = tmp_path / "models"
    registry = ModelRegistry(folder)
    entry = registry.importModel(tiny_model)
    assert entry.path == folder / "tiny.sarmodel" and entry.task == "segmentation"
    assert entry.classNames == ["tumor"] and "classes: tumor" in entry.summary()
    assert registry.importModel(tiny_model).path == entry.path  # same bytes: no copy
    junk = tmp_path / "junk.sarmodel"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="junk.sarmodel"):
        registry.importModel(junk)
    shutil.copy(junk, folder / "junk.sarmodel")
    errors: list[str] = []
    assert [m.name for m in registry.models(errors)] == [entry.name]
    assert len(errors) == 1 and "junk.sarmodel" in errors[0]
    index = json.loads((folder / ".sar-models-index.json").read_text())
    assert index["tiny.sarmodel"]["header"]["classes"][0]["name"] == "tumor"
    assert "junk.sarmodel" in index["junk.sarmodel"]["error"]
    offline = ModelRegistry(folder, python="/nonexistent/python")  # no engine: the index
    assert [m.name for m in offline.models()] == [entry.name]


def test_fine_tune_section_trains_on_the_exported_training_set(tiny_model) -> None:
    """The session model came from "Add to training set" + the Fine-tune command."""
    header = readHeader(tiny_model)
    assert header["task"] == "segmentation" and header["init"] == "scratch"
    assert [(c["name"], c["source_labels"]) for c in header["classes"]] == [("tumor", "1")]
    assert sorted(header["training_cases"] + header["test_cases"]) == ["brain1_image",
                                                                       "brain2_image"]


def test_device_probe_and_memory_estimate(tiny_model) -> None:
    report = DeviceInfo.probeDevices()
    import torch

    assert report.torchVersion == torch.__version__
    assert report.cudaAvailable == torch.cuda.is_available()
    if not report.cudaAvailable:
        device, note = DeviceInfo.resolveDevice("auto", report)
        assert device == "cpu" and "No usable CUDA GPU" in note and "fast mode" in note
        device, note = DeviceInfo.resolveDevice("cuda", report)
        assert device == "cpu" and note.endswith("Use the CPU instead?")
    from SARCore.inference.segment import BYTES_PER_VOXEL_CHANNEL

    assert DeviceInfo.bytesPerVoxelChannel() == BYTES_PER_VOXEL_CHANNEL  # read, not imported
    header = readHeader(tiny_model)
    need = DeviceInfo.estimateGpuBytes(header)
    voxels = int(np.prod(header["patch_size"]))
    per_voxel = BYTES_PER_VOXEL_CHANNEL * 8  # width / 8: 8 channels at full resolution
    assert need == int(0.6 * 2**30 + 4 * 19.07e6 / 64 + per_voxel * voxels)
    full = DeviceInfo.estimateGpuBytes({"patch_size": [64, 64, 32], "width_divisor": 1})
    assert 0.9 <= full / 2**30 <= 1.0  # the figure the documentation quotes
    assert "GiB of GPU memory (window 64x64x32" in DeviceInfo.memoryText(header)
