"""Defects of the Slicer module found in review, each checked on real MRML and real
engine processes: failed header reads are not cached, headers come from the index or a
background thread (never the GUI thread), a closed scene gets no result, temporary
inputs are uncompressed and removed when a job cannot start, the batch script always
exits, and the self-test knows when the engine cannot run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import conftest_slicer  # noqa: F401  (puts the module folder on sys.path)
import pytest
from inference_models import calibrated_model

from SARCore.models.modelfile import load_model_file
from SARSegmentationLib import ModelRegistry as registry_module
from SARSegmentationLib import MrmlIO
from SARSegmentationLib.Dependencies import engineSkipReason, installedVersion
from SARSegmentationLib.Engine import engineEnvironment
from SARSegmentationLib.JobRunner import JobStatus, ProcessRunner
from SARSegmentationLib.Logic import SARLogic
from SARSegmentationLib.ModelRegistry import ModelListing, ModelRegistry, readHeader
from SARSegmentationLib.SegmentRun import prepareSegmentJob, startSegmentJob

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "SARSegmentation" / "Scripts" / "sar_batch_segment.py"
NO_ENGINE = "/nonexistent/python"


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> Path:
    """A small random CT segmentation model (4 mm grid: fast on a CPU)."""
    folder = tmp_path_factory.mktemp("random-model")
    return calibrated_model(folder / "random.sarmodel", preset="ct", spacing=(4.0, 4.0, 4.0),
                            sequences=(), modalities=("CT",), name="random-ct")


def test_a_failed_header_read_is_tried_again(tmp_path, random_model) -> None:
    """A model copied in while the engine could not run (no torch) lists once it can."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(random_model, folder / "brain.sarmodel")
    errors: list[str] = []
    assert ModelRegistry(folder, python=NO_ENGINE).models(errors) == []
    assert len(errors) == 1 and "brain.sarmodel" in errors[0]
    listed = ModelRegistry(folder).models()  # same size and time as the failed read
    assert [m.name for m in listed] == ["random-ct"]


def test_headers_come_from_the_index_without_starting_the_engine(tmp_path,
                                                                 random_model) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    model = Path(shutil.copy(random_model, folder / "m.sarmodel"))
    ModelRegistry(folder).models()  # writes the index
    registry_module._memo.clear()  # a new Slicer session: nothing in memory
    header = readHeader(model, python=NO_ENGINE)  # would fail if it started the engine
    assert header["name"] == "random-ct"
    model.touch()  # changed file: the index no longer vouches for it
    registry_module._memo.clear()
    with pytest.raises(Exception, match="engine could not start"):
        readHeader(model, python=NO_ENGINE)


def test_model_listing_reads_new_headers_in_the_background(tmp_path, random_model) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(random_model, folder / "new.sarmodel")
    (folder / "junk.sarmodel").write_bytes(b"not a model")
    registry_module._memo.clear()
    listing = ModelListing(ModelRegistry(folder))
    started = time.monotonic()
    entries, errors = listing.list()
    assert time.monotonic() - started < 1.0  # the engine takes seconds to start
    assert entries == [] and errors == [] and listing.busy
    assert listing.reader.wait(timeout=120) and listing.poll()
    entries, errors = listing.list()
    assert [e.name for e in entries] == ["random-ct"]
    assert len(errors) == 1 and "junk.sarmodel" in errors[0]
    assert not listing.busy  # a failed file is not read again until forget()
    listing.forget()
    listing.list()
    assert listing.busy and listing.reader.paths == [folder / "junk.sarmodel"]
    listing.reader.wait(timeout=120)


def test_scene_close_cancels_the_running_job(headless_scene) -> None:
    runner = ProcessRunner([sys.executable, "-c", "import time; time.sleep(60)"])
    runner.start()
    stop = SARLogic(headless_scene).cancelOnSceneClose(runner)
    headless_scene.Clear(0)
    result = runner.wait(timeout=30)
    stop()
    assert result.status is JobStatus.CANCELLED and "scene was closed" in result.message


def test_a_result_is_not_imported_into_the_next_scene(headless_scene, random_model,
                                                      ct_small) -> None:
    volume = MrmlIO.loadVolume(headless_scene, ct_small)
    header, _ = load_model_file(random_model)
    job = prepareSegmentJob(headless_scene, [volume], random_model, device="cpu",
                            header=header)
    text = job.cases[0].inputFile.read_bytes()[:400]
    assert b"encoding: raw" in text  # temporary input written uncompressed
    result = startSegmentJob(job).wait(timeout=300)
    assert result.ok, result.message
    headless_scene.Clear(0)  # the user closed the scene while the job finished
    cases = SARLogic(headless_scene).finishSegment(job, result, show3D=False)
    assert cases[0].segmentation is None and "scene was closed" in cases[0].error
    assert headless_scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0
    assert not job.workDir.exists()


def test_temporary_files_go_when_a_job_cannot_start(headless_scene, random_model,
                                                    ct_small) -> None:
    volume = MrmlIO.loadVolume(headless_scene, ct_small)
    header, _ = load_model_file(random_model)
    job = prepareSegmentJob(headless_scene, [volume], random_model, header=header,
                            python=NO_ENGINE)
    assert job.cases[0].inputFile.is_file()
    with pytest.raises(OSError):
        startSegmentJob(job)
    assert not job.workDir.exists()
    left = MrmlIO.makeWorkFolder("SAR-test-")
    (left / "input.nrrd").write_bytes(b"x")
    MrmlIO.removeAllWorkFolders()  # what Slicer quitting mid-job runs
    assert not left.exists()


def test_batch_script_exits_on_an_unexpected_error(tmp_path) -> None:
    """``Slicer --python-script`` would hang on an uncaught exception: exit code 3."""
    too_long = tmp_path / ("x" * 300)  # stat() raises OSError, not a SARError
    done = subprocess.run([sys.executable, str(SCRIPT), "--input", str(too_long),
                           "--model", str(tmp_path / "m.sarmodel"), "--output",
                           str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120, env=engineEnvironment())
    assert done.returncode == 3, done.stderr
    assert "error: OSError" in done.stderr and "Traceback" not in done.stderr


def test_self_test_skips_the_engine_part_without_torch() -> None:
    assert engineSkipReason() == ""  # everything is installed here

    def without_torch(name: str) -> str | None:
        return None if name == "torch" else installedVersion(name)

    reason = engineSkipReason(without_torch)
    assert "torch" in reason and "not installed" in reason


def test_mps_is_offered_and_passed_through() -> None:
    from SARSegmentationLib import Commands, DeviceInfo
    from SARSegmentationLib.SegmentRun import DEVICES

    assert "mps" in DEVICES and "mps" in Commands.DEVICES
    ui = (REPO / "SARSegmentation" / "Resources" / "UI" / "SARSegmentation.ui").read_text()
    assert "<string>mps</string>" in ui
    device, note = DeviceInfo.resolveDevice("mps", DeviceInfo.DeviceReport(problem="no CUDA"))
    assert device == "mps" and "Apple GPU" in note
