"""One segmentation run: volumes out to files, the engine in a process, segments back in.

``prepareSegmentJob`` writes the input volumes to a private work folder and builds the
``segment`` command; ``finishSegmentJob`` imports the label maps the engine wrote into
segmentation nodes. The widget runs the job between the two with a polled
:class:`~SARSegmentationLib.JobRunner.ProcessRunner`; :func:`segmentVolumes` does all
three in a blocking call for scripts and the batch script (no dialogs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SARSegmentationLib import MrmlIO
from SARSegmentationLib.Engine import engineCommand, engineEnvironment
from SARSegmentationLib.JobRunner import JobResult, JobStatus, ProcessRunner
from SARSegmentationLib.ModelRegistry import readHeader
from SARSegmentationLib.Progress import Event
from SARSegmentationLib.SegmentationLogic import (
    SegmentClass,
    checkCanFill,
    classesFromHeader,
    importLabelmapFile,
)
from SARSegmentationLib.SequenceInputs import modelSequences

log = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class SegmentCase:
    """One input volume, its file for the engine and where the result goes."""

    caseId: str
    volume: Any
    inputFile: Path
    target: Any = None  # an existing segmentation node to fill, or None for a new one
    segmentation: Any = None  # the node holding the result, once imported
    error: str = ""
    confidence: dict[str, Any] = field(default_factory=dict)  # kind -> volume node


@dataclass
class SegmentJob:
    """Everything a segmentation run needs between starting and importing."""

    modelPath: Path
    header: dict[str, Any]
    classes: list[SegmentClass]
    workDir: Path
    outputDir: Path
    cases: list[SegmentCase]
    command: list[str]
    overwrite: bool = False
    keepWorkDir: bool = False
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)


def checkModelFitsInput(header: dict[str, Any], modelPath: Path) -> None:
    from SARCore.errors import ModelFileError

    if header.get("task") != "segmentation":
        raise ModelFileError(f"this is a {header.get('task', 'unknown')!r} model; pick a "
                             "fine-tuned segmentation model", modelPath)
    channels = int(header.get("in_channels", 1) or 1)
    if channels != 1 and len(header.get("sequences") or []) != channels:
        raise ModelFileError(f"the model takes {channels} input channels but its header "
                             "does not name one sequence per channel", modelPath)


def prepareSegmentJob(scene, volumes: list, modelPath: str | Path, device: str = "auto",
                      fast: bool = False, targets: list | None = None,
                      overwrite: bool = False, header: dict[str, Any] | None = None,
                      python: str | None = None, workDir: str | Path | None = None,
                      probabilities: bool = False, tta: bool = False) -> SegmentJob:
    """Check the model and outputs, write the inputs, build the engine command."""
    from SARCore.errors import ConfigError, DataError

    modelPath = Path(modelPath)
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if not volumes:
        raise DataError("no input volume selected")
    header = header or readHeader(modelPath, python)
    checkModelFitsInput(header, modelPath)
    classes = classesFromHeader(header)
    targets = list(targets or [None] * len(volumes))
    if len(targets) != len(volumes):
        raise ConfigError(f"{len(targets)} output segmentations given for {len(volumes)} "
                          "input volumes")
    for target in targets:  # refuse before any work, not after minutes of inference
        checkCanFill(target, overwrite)
    work = Path(workDir) if workDir else MrmlIO.makeWorkFolder("SAR-segment-")
    try:
        cases = _writeInputs(volumes, targets, work / "input", modelSequences(header))
    except BaseException:
        MrmlIO.removeWorkFolder(work)
        raise
    outputs = work / "output"
    arguments = [*(str(c.inputFile) for c in cases), "--model", str(modelPath),
                 "--out", str(outputs), "--device", device, "--overwrite"]
    if fast:
        arguments.append("--fast")
    if probabilities:  # confidence maps for correction guided by uncertainty
        arguments.append("--probabilities")
    if tta:
        arguments.append("--tta")
    command = engineCommand("segment", arguments, python)
    return SegmentJob(modelPath, header, classes, work, outputs, cases, command, overwrite)


def _writeInputs(volumes: list, targets: list, inputs: Path,
                 sequences: list[str]) -> list[SegmentCase]:
    """One file per case, or for a multi-sequence model one case folder (a list of
    volumes per case, one per sequence, the first giving the grid)."""
    from SARSegmentationLib.SequenceInputs import writeCase

    inputs.mkdir(parents=True, exist_ok=True)
    cases, used = [], set()
    for item, target in zip(volumes, targets):
        group = list(item) if isinstance(item, (list, tuple)) else [item]
        if len(group) != max(1, len(sequences)):
            from SARCore.errors import DataError

            raise DataError(f"the model takes {len(sequences)} sequences "
                            f"({', '.join(sequences)}); {len(group)} volume(s) given",
                            group[0].GetName() if group else None)
        volume = group[0]
        caseId = MrmlIO.safeName(volume.GetName())
        while caseId in used:
            caseId += "_"
        used.add(caseId)
        if sequences:
            path = writeCase(group, sequences, inputs / caseId)
        else:  # uncompressed: gzip of a large CT costs seconds; the file lives for one run
            path = MrmlIO.saveNode(volume, inputs / f"{caseId}.nrrd", compress=False)
        cases.append(SegmentCase(caseId, volume, path, target))
    return cases


def startSegmentJob(job: SegmentJob) -> ProcessRunner:
    """Start the engine; if it cannot start, the job's temporary files go at once."""
    runner = ProcessRunner(job.command, env=engineEnvironment(), outputDirs=[job.outputDir])
    try:
        runner.start()
    except BaseException:
        discardSegmentJob(job)
        raise
    return runner


def discardSegmentJob(job: SegmentJob) -> None:
    """Remove the job's temporary folder (failed start, Slicer quitting mid-job)."""
    if not job.keepWorkDir:
        MrmlIO.removeWorkFolder(job.workDir)


def _labelFileFor(job: SegmentJob, case: SegmentCase, result: JobResult) -> Path | None:
    for item in result.summary.get("outputs") or []:
        if isinstance(item, dict) and str(item.get("case")) == case.caseId and item.get("label"):
            return Path(item["label"])
    fallback = job.outputDir / f"{case.caseId}_label.nii.gz"
    return fallback if fallback.is_file() else None


def finishSegmentJob(scene, job: SegmentJob, result: JobResult,
                     show3D: bool = True) -> list[SegmentCase]:
    """Import every case the engine finished; cases without a result carry an error."""
    failed = {str(f.get("case")): str(f.get("error")) for f in result.summary.get("failed") or []
              if isinstance(f, dict)}
    try:
        for case in job.cases:
            if case.volume is None or case.volume.GetScene() is not scene:
                case.error = "the scene was closed while the job ran; nothing was imported"
                continue
            cancelled = result.status is JobStatus.CANCELLED
            labelFile = None if cancelled else _labelFileFor(job, case, result)
            if labelFile is None or not labelFile.is_file():
                case.error = failed.get(case.caseId) or (
                    result.message if not result.ok else
                    f"the engine wrote no result for {case.caseId}")
                continue
            try:
                case.segmentation = importLabelmapFile(
                    scene, labelFile, job.classes, case.volume, case.target,
                    overwrite=job.overwrite or case.target is None, show3D=show3D,
                    name=resultName(case.volume, job.header))
                placeBesideInput(scene, case.segmentation, case.volume)
                case.confidence = _loadConfidence(scene, job, case, result)
            except Exception as exc:  # one bad case must not lose the others
                log.exception("importing %s failed", labelFile)
                case.error = str(exc)
    finally:
        discardSegmentJob(job)
    return job.cases


def resultName(volume, header: dict[str, Any]) -> str:
    """``"<input> - <model name>"``: which scan and which model, in the Data module."""
    return f"{volume.GetName()} - {header.get('name') or 'SAR model'}"


def placeBesideInput(scene, node, volume) -> None:
    """Put ``node`` in the subject hierarchy folder (study) of its input volume."""
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if hierarchy is None:
        return
    volumeItem = hierarchy.GetItemByDataNode(volume)
    if not volumeItem:  # inside Slicer every node has an item; headless, not always
        return
    parent = hierarchy.GetItemParent(volumeItem)
    nodeItem = hierarchy.GetItemByDataNode(node)
    if nodeItem:
        hierarchy.SetItemParent(nodeItem, parent)
    else:
        hierarchy.CreateItem(parent, node)


def _loadConfidence(scene, job: SegmentJob, case: SegmentCase,
                    result: JobResult) -> dict[str, Any]:
    """The case's probability / disagreement maps as overlay volumes (if written)."""
    from SARSegmentationLib.Uncertainty import showOverlay

    written = next((o for o in result.summary.get("outputs") or []
                    if isinstance(o, dict) and str(o.get("case")) == case.caseId), {})
    nodes = {}
    for kind in ("probability", "disagreement"):
        path = written.get(kind)
        if path and Path(path).is_file():
            node = MrmlIO.loadVolume(scene, path, name=f"{case.volume.GetName()} SAR {kind}")
            showOverlay(node, kind)
            placeBesideInput(scene, node, case.volume)
            nodes[kind] = node
    return nodes


def segmentVolumes(scene, volumes: list, modelPath: str | Path, device: str = "auto",
                   fast: bool = False, targets: list | None = None, overwrite: bool = False,
                   timeout: float | None = None, onEvent: Callable[[Event], None] | None = None,
                   show3D: bool = True, python: str | None = None,
                   ) -> tuple[list[SegmentCase], JobResult]:
    """Blocking segmentation of ``volumes`` (no dialogs): the scripting entry point."""
    job = prepareSegmentJob(scene, volumes, modelPath, device, fast, targets, overwrite,
                            python=python)
    runner = startSegmentJob(job)
    result = runner.wait(timeout=timeout, onEvent=onEvent)
    return finishSegmentJob(scene, job, result, show3D), result
