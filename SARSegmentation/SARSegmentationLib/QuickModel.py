"""A tiny segmentation model trained in about a minute, for self-tests and demos.

It walks the panel's own loop: each (volume, mask) pair becomes a segmentation node, goes
through "Add to training set" into an MSD folder, and the Fine-tune command trains on it
with test-sized options (width / 8, one step, 4 mm). The model is not useful for real
work; it proves that the whole chain runs on this machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import slicer
import vtk

from SARSegmentationLib import Commands, MrmlIO
from SARSegmentationLib.DatasetExport import addCaseToDataset
from SARSegmentationLib.Engine import engineEnvironment
from SARSegmentationLib.JobRunner import ProcessRunner
from SARSegmentationLib.SegmentationLogic import (
    SegmentClass,
    labelmapToSegmentation,
    prepareOutputNode,
)

#: Options appended to the Fine-tune command: a test-sized run.
QUICK_OPTIONS = ["--max-steps", "1", "--width-divisor", "8", "--spacing", "4", "4", "4",
                 "--batch-size", "2"]


def maskToSegmentation(scene, volume, mask: np.ndarray, cls: SegmentClass):
    """A segmentation node with one segment from a ``[k, j, i]`` mask on ``volume``'s grid."""
    holder = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SAR mask (temporary)")
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    holder.SetIJKToRASMatrix(matrix)
    slicer.util.updateVolumeFromArray(holder, (np.asarray(mask) > 0).astype(np.uint8)
                                      * cls.label)
    try:
        node = prepareOutputNode(scene, volume, name=f"{volume.GetName()} {cls.name}")
        return labelmapToSegmentation(holder, [cls], volume, node, show3D=False)
    finally:
        MrmlIO.removeNodes(scene, holder)


def makeQuickModel(scene, volumes: list, masks: list, workDir: str | Path,
                   className: str = "tumor", modality: str = "MRI",
                   timeout: float = 1800) -> Path:
    """Train a tiny model on ``volumes`` (of ``modality``) with ``masks``; returns the
    ``.sarmodel`` path."""
    workDir = Path(workDir)
    cls = SegmentClass(className, 1, (0.89, 0.10, 0.11))
    dataset = workDir / "dataset"
    for volume, mask in zip(volumes, masks):
        segmentation = maskToSegmentation(scene, volume, mask, cls)
        addCaseToDataset(scene, segmentation, volume, dataset, modality=modality,
                         replace=True)
        MrmlIO.removeNodes(scene, segmentation)
    job = Commands.finetuneJob(dataset, "scratch", workDir / "run", 1, "cpu",
                               labels=Commands.labelsFromDataset(dataset))
    runner = ProcessRunner(job.command + QUICK_OPTIONS, env=engineEnvironment(),
                           outputDirs=job.outputDirs)
    runner.start()
    result = runner.wait(timeout=timeout)
    if not result.ok:
        from SARCore.errors import SARError

        raise SARError(f"training the quick model failed: {result.message}", workDir)
    return job.modelFile
