"""What the panel does, without the panel: callable from scripts, tests and the widget.

Everything here works headless on PyPI ``slicer-core`` (real MRML, no Qt). Long tasks
come back as :class:`~SARSegmentationLib.Commands.EngineJob`/``SegmentJob`` objects to
start and poll; :meth:`SARLogic.process` is the blocking, dialog-free entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import slicer

from SARSegmentationLib import Commands, MrmlIO
from SARSegmentationLib.DatasetExport import ExportResult, addCaseToDataset
from SARSegmentationLib.Engine import engineEnvironment, ensureEngineImportable
from SARSegmentationLib.JobRunner import JobResult, ProcessRunner
from SARSegmentationLib.ModelRegistry import ModelRegistry, readHeader
from SARSegmentationLib.Parameters import SARParameters, getParameterNode
from SARSegmentationLib.Progress import Event
from SARSegmentationLib.SegmentRun import (
    SegmentJob,
    discardSegmentJob,
    finishSegmentJob,
    prepareSegmentJob,
    segmentVolumes,
    startSegmentJob,
)
from SARSegmentationLib.SequenceInputs import (
    SequenceSlot,
    guessSlots,
    modelSequences,
    sceneVolumes,
    slotVolumes,
)

ensureEngineImportable()
from SARCore.errors import SARError  # noqa: E402


@dataclass
class FileOutcome:
    """One input of a batch (a file, or one file per sequence): its volume node(s), its
    segmentation node or why not."""

    path: Path
    volumes: list = field(default_factory=list)  # one per sequence; the first gives the grid
    segmentation: Any = None
    error: str = ""

    @property
    def volume(self) -> Any:
        return self.volumes[0] if self.volumes else None


class JobFailedError(SARError):
    """An engine job (or one of its cases) did not produce its result."""


def defaultModelsFolder() -> Path:
    """Where models live unless the user picks another folder."""
    return Path.home() / "SARExtension" / "models"


class SARLogic:
    """GUI-free logic of the SAR Segmentation module."""

    def __init__(self, scene=None, python: str | None = None) -> None:
        self._scene = scene
        self.python = python

    @property
    def scene(self):
        return self._scene if self._scene is not None else slicer.mrmlScene

    def getParameters(self) -> SARParameters:
        return SARParameters(getParameterNode(self.scene))

    # -- training jobs -----------------------------------------------------------------
    def preprocessJob(self, params: SARParameters) -> Commands.EngineJob:
        """Selected volumes (written to a work folder) and/or a folder of scans."""
        inputs: list[str] = []
        cleanup: list[Path] = []
        volumes = [v for v in params.dataVolumes if v is not None]
        if volumes:
            work = MrmlIO.makeWorkFolder("SAR-data-")
            cleanup.append(work)
            try:
                for volume in volumes:  # uncompressed: temporary, and gzip is slow
                    name = MrmlIO.safeName(volume.GetName())
                    inputs.append(str(MrmlIO.saveNode(volume, work / f"{name}.nrrd",
                                                      compress=False)))
            except BaseException:
                MrmlIO.removeWorkFolder(work)
                raise
        if params.dataFolder:
            inputs.append(params.dataFolder)
        job = Commands.preprocessJob(inputs, params.preprocessedFolder, params.preset,
                                     params.modality, self.python)
        job.cleanup = cleanup
        return job

    def cubesJob(self, params: SARParameters) -> Commands.EngineJob:
        return Commands.cubesJob(params.preprocessedFolder, params.cubesFolder, self.python)

    def pretrainJob(self, params: SARParameters) -> Commands.EngineJob:
        return Commands.pretrainJob(params.cubesFolder, params.pretrainMethod,
                                    params.pretrainFolder, params.pretrainEpochs, params.device,
                                    params.pretrainWidthDivisor, params.pretrainResume,
                                    self.python)

    def finetuneJob(self, params: SARParameters) -> Commands.EngineJob:
        return Commands.finetuneJob(params.finetuneData, params.finetuneInit,
                                    params.finetuneFolder, params.finetuneEpochs, params.device,
                                    params.finetuneLabelFraction, params.finetuneResume,
                                    params.finetuneLabels, self.python,
                                    params.finetuneFreshHead)

    @staticmethod
    def startJob(job: Commands.EngineJob) -> ProcessRunner:
        """Start the engine; if it cannot start, the job's temporary inputs go at once."""
        runner = ProcessRunner(job.command, env=engineEnvironment(), outputDirs=job.outputDirs)
        try:
            runner.start()
        except BaseException:
            SARLogic.discardJob(job)
            raise
        return runner

    @staticmethod
    def discardJob(job: Commands.EngineJob) -> None:
        """Remove the job's temporary inputs (done, failed to start, Slicer quitting)."""
        for folder in job.cleanup:
            MrmlIO.removeWorkFolder(folder)

    def cancelOnSceneClose(self, runner: ProcessRunner) -> Callable[[], None]:
        """Cancel ``runner`` when the scene closes; returns the function that stops watching.

        A segmentation's result belongs to the scene it was started in: importing it into
        the next scene would mix patients.
        """
        def closing(*_: Any) -> None:
            runner.cancel(block=False, reason="Cancelled: the scene was closed.")

        scene = self.scene
        tag = scene.AddObserver(slicer.vtkMRMLScene.StartCloseEvent, closing)
        return lambda: scene.RemoveObserver(tag)

    def finishJob(self, job: Commands.EngineJob, result: JobResult,
                  params: SARParameters | None = None) -> str:
        """Clean up and hand the result on: a pre-trained model becomes the fine-tuning
        start point, a fine-tuned model is copied into the models folder."""
        self.discardJob(job)
        if not result.ok:
            return f"{job.verb}: {result.message}"
        model = job.modelFile if job.modelFile and job.modelFile.is_file() else None
        if model and params is not None and job.verb == "pretrain":
            params.finetuneInit = str(model)
            return f"pretrain finished: {model} (selected as the fine-tuning start point)"
        if model and job.verb == "finetune":
            folder = (params.modelsFolder if params and params.modelsFolder
                      else defaultModelsFolder())
            entry = self.modelRegistry(folder).importModel(model)
            if params is not None:
                params.modelPath = str(entry.path)
            return f"finetune finished: model added to the models folder as {entry.path.name}"
        return f"{job.verb} finished"

    # -- segmentation ------------------------------------------------------------------
    def sequenceSlots(self, params: SARParameters,
                      header: dict[str, Any] | None = None) -> list[SequenceSlot]:
        """For the chosen model, one slot per sequence it takes (none for a one-channel
        model): the volume the user chose for it, else a best guess by name."""
        if header is None and params.modelPath:
            header = readHeader(params.modelPath, self.python)
        sequences = modelSequences(header) if header else []
        return guessSlots(sequences, sceneVolumes(self.scene), preferred=params.inputVolume,
                          chosen={s: params.sequenceVolume(s) for s in sequences})

    @staticmethod
    def chooseSequenceVolume(params: SARParameters, sequence: str, volume) -> None:
        """The user's pick for one sequence; it outlives model changes and scene saves."""
        params.setSequenceVolume(sequence, volume)

    def prepareSegment(self, params: SARParameters, overwrite: bool = False) -> SegmentJob:
        target = params.outputSegmentation
        inputs = [params.inputVolume] if params.inputVolume else []
        header = readHeader(params.modelPath, self.python) if params.modelPath else None
        slots = self.sequenceSlots(params, header) if header else []
        if slots:  # one volume per sequence, the first giving the grid
            inputs = [slotVolumes(slots, sceneVolumes(self.scene))]
        return prepareSegmentJob(self.scene, inputs, params.modelPath, header=header,
                                 device=params.device, fast=params.fastMode,
                                 targets=[target], overwrite=overwrite, python=self.python,
                                 probabilities=params.uncertainty, tta=params.tta)

    startSegment = staticmethod(startSegmentJob)
    discardSegment = staticmethod(discardSegmentJob)

    def finishSegment(self, job: SegmentJob, result: JobResult, show3D: bool = True) -> list:
        return finishSegmentJob(self.scene, job, result, show3D)

    def process(self, inputVolume, modelPath: str | Path, outputSegmentation=None,
                device: str = "auto", fast: bool = False, overwrite: bool = False,
                timeout: float | None = None, show3D: bool = True,
                onEvent: Callable[[Event], None] | None = None):
        """Segment one volume and return the segmentation node (blocking, no dialogs).

        Raises :class:`SegmentationExistsError` if ``outputSegmentation`` has segments and
        ``overwrite`` is false, and :class:`JobFailedError` with the engine's message if
        the run fails.
        """
        cases, result = segmentVolumes(self.scene, [inputVolume], modelPath, device, fast,
                                       [outputSegmentation], overwrite, timeout, onEvent,
                                       show3D, self.python)
        if cases[0].segmentation is None:
            raise JobFailedError(cases[0].error or result.message, inputVolume.GetName())
        return cases[0].segmentation

    def processFiles(self, files: Sequence[Path | Sequence[Path]], modelPath: str | Path,
                     device: str = "auto", fast: bool = False, timeout: float | None = None,
                     onEvent: Callable[[Event], None] | None = None) -> list[FileOutcome]:
        """Load and segment several inputs in one engine run: each a file, or for a
        multi-sequence model a list of files in the header's sequence order. Unreadable
        files are reported per input; the others are segmented."""
        outcomes = []
        for item in files:
            paths = [Path(p) for p in item] if isinstance(item, (list, tuple)) else [Path(item)]
            outcome = FileOutcome(paths[0])
            try:
                for path in paths:
                    outcome.volumes.append(MrmlIO.loadVolume(self.scene, path))
            except SARError as exc:
                outcome.error = str(exc)
                MrmlIO.removeNodes(self.scene, *outcome.volumes)
                outcome.volumes = []
            outcomes.append(outcome)
        loaded = [o for o in outcomes if o.volumes]
        if loaded:
            inputs = [o.volumes if len(o.volumes) > 1 else o.volume for o in loaded]
            cases, _ = segmentVolumes(self.scene, inputs, modelPath, device,
                                      fast, None, False, timeout, onEvent, False, self.python)
            for outcome, case in zip(loaded, cases):
                outcome.segmentation = case.segmentation
                outcome.error = "" if case.segmentation is not None else (case.error or
                                                                          "no result")
        return outcomes

    # -- models and training set ------------------------------------------------------
    def modelRegistry(self, folder: str | Path | None = None) -> ModelRegistry:
        return ModelRegistry(folder or defaultModelsFolder(), self.python)

    def addToTrainingSet(self, segmentationNode, volumeNode, folder: str | Path,
                         replace: bool = False, modality: str | None = None,
                         params: SARParameters | None = None) -> ExportResult:
        """Export a corrected case; with ``params``, point the Fine-tune section at it."""
        result = addCaseToDataset(self.scene, segmentationNode, volumeNode, folder,
                                  modality=modality, replace=replace)
        if params is not None:
            params.trainingSetFolder = params.finetuneData = str(folder)
            params.finetuneLabels = Commands.labelsFromDataset(folder)
        return result
