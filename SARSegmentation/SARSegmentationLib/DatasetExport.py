"""Corrected segmentations become training cases of an MSD-style dataset folder.

"Add to training set" writes the image and the segmentation (as a label map on the
image's own grid) to ``imagesTr/<case>.nii.gz`` and ``labelsTr/<case>.nii.gz`` and creates
or extends ``dataset.json`` (``labels`` from the segment names; a name already in the
dataset keeps its value, a segment that came from a model keeps the model's label, any
other segment gets the next free value). The Fine-tune section trains on the folder as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk

from SARSegmentationLib import MrmlIO
from SARSegmentationLib.Engine import ensureEngineImportable
from SARSegmentationLib.SegmentationLogic import segmentLabel

ensureEngineImportable()
from SARCore.atomic import write_json_atomic  # noqa: E402
from SARCore.errors import DataError, SARError  # noqa: E402

DATASET_FILE = "dataset.json"


class CaseExistsError(SARError):
    """The dataset already has a case of that name and replacing it was not allowed."""


@dataclass(frozen=True)
class ExportResult:
    caseId: str
    imagePath: Path
    labelPath: Path
    datasetPath: Path
    labels: dict[int, str]  # value -> segment name, as written


def _imageOf(entry: Any) -> str | None:
    """The image path of a ``training`` entry (MSD allows a bare string)."""
    return entry.get("image") if isinstance(entry, dict) else entry


def readDataset(folder: Path) -> dict[str, Any]:
    """The folder's ``dataset.json``, or a fresh MSD skeleton when there is none."""
    path = folder / DATASET_FILE
    if not path.is_file():
        return {"name": folder.name, "description": "Cases corrected in 3D Slicer (SARExtension)",
                "tensorImageSize": "3D", "modality": {}, "labels": {"0": "background"},
                "numTraining": 0, "numTest": 0, "training": [], "test": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"not a readable dataset description ({exc})", path) from exc
    if not isinstance(data, dict) or not isinstance(data.get("training", []), list):
        raise DataError('expected an object with a "training" list', path)
    return data


def assignLabelValues(segmentationNode, segmentIds: list[str],
                      existing: dict[str, str]) -> dict[str, int]:
    """Segment id -> label value: the dataset's value for the name, the model's, or new."""
    segmentation = segmentationNode.GetSegmentation()
    names = [segmentation.GetSegment(s).GetName().strip().casefold() for s in segmentIds]
    if len(set(names)) != len(names):
        raise DataError("two segments have the same name; the dataset labels need unique "
                        "names", hint="rename one of them")
    byName = {name.strip().casefold(): int(value) for value, name in existing.items()}
    taken = set(byName.values()) | {0}
    values: dict[str, int] = {}
    pending = []
    for segmentId in segmentIds:
        segment = segmentation.GetSegment(segmentId)
        key = segment.GetName().strip().casefold()
        if key == "background":
            raise DataError("a segment is named 'background', which is label 0 in the dataset",
                            hint="rename the segment")
        if key in byName:
            values[segmentId] = byName[key]
        else:
            pending.append((segmentId, segmentLabel(segment)))
    for segmentId, modelLabel in pending:
        if modelLabel is not None and modelLabel not in taken:
            value = modelLabel
        else:
            value = max(taken) + 1
        taken.add(value)
        values[segmentId] = value
    return values


def _colorTable(scene, segmentationNode, values: dict[str, int]):
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", "SAR export colors (temporary)")
    table.SetTypeToUser()
    table.SetNumberOfColors(max(values.values()) + 1)
    for entry in range(table.GetNumberOfColors()):
        table.SetColor(entry, "", 0.0, 0.0, 0.0, 0.0)
    segmentation = segmentationNode.GetSegmentation()
    for segmentId, value in values.items():
        segment = segmentation.GetSegment(segmentId)
        table.SetColor(value, segment.GetName(), *segment.GetColor(), 1.0)
    return table


def exportLabelmap(scene, segmentationNode, referenceVolume, values: dict[str, int]):
    """The segments as one label map node on ``referenceVolume``'s grid (caller removes it)."""
    table = _colorTable(scene, segmentationNode, values)
    labelNode = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SAR export (temporary)")
    ids = vtk.vtkStringArray()
    for segmentId in values:
        ids.InsertNextValue(segmentId)
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentationNode, ids, labelNode, referenceVolume,
            slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, table)
    finally:
        MrmlIO.removeNodes(scene, table)
    written = set(np.unique(slicer.util.arrayFromVolume(labelNode)).tolist()) if ok else set()
    if not ok or not written <= {0, *values.values()}:
        MrmlIO.removeNodes(scene, labelNode)
        raise DataError(f"exporting {segmentationNode.GetName()!r} as a label map failed")
    return labelNode


def addCaseToDataset(scene, segmentationNode, volumeNode, folder: str | Path,
                     caseId: str | None = None, modality: str | None = None,
                     replace: bool = False, segmentIds: list[str] | None = None) -> ExportResult:
    """Write image + label into ``folder`` and list the case in its ``dataset.json``."""
    folder = Path(folder)
    dataset = readDataset(folder)
    caseId = MrmlIO.safeName(caseId or volumeNode.GetName())
    image = f"./imagesTr/{caseId}.nii.gz"
    entries = list(dataset.get("training", []))
    if any(_imageOf(e) == image for e in entries) and not replace:
        raise CaseExistsError(f"case {caseId!r} is already in the dataset", folder / DATASET_FILE,
                              "allow replacing it, or give the case another name")
    segmentation = segmentationNode.GetSegmentation()
    segmentIds = segmentIds or [segmentation.GetNthSegmentID(i)
                                for i in range(segmentation.GetNumberOfSegments())]
    if not segmentIds:
        raise DataError(f"segmentation {segmentationNode.GetName()!r} has no segments")
    labels = {str(k): str(v) for k, v in dataset.get("labels", {"0": "background"}).items()}
    values = assignLabelValues(segmentationNode, segmentIds, labels)
    labelNode = exportLabelmap(scene, segmentationNode, volumeNode, values)
    try:
        imagePath = MrmlIO.saveNode(volumeNode, folder / image)
        labelPath = MrmlIO.saveNode(labelNode, folder / "labelsTr" / f"{caseId}.nii.gz")
    finally:
        MrmlIO.removeNodes(scene, labelNode)
    for segmentId, value in values.items():
        labels[str(value)] = segmentation.GetSegment(segmentId).GetName()
    labels.setdefault("0", "background")
    dataset["labels"] = dict(sorted(labels.items(), key=lambda kv: int(kv[0])))
    if modality and not dataset.get("modality"):
        dataset["modality"] = {"0": modality}
    entries = [e for e in entries if _imageOf(e) != image]
    entries.append({"image": image, "label": f"./labelsTr/{caseId}.nii.gz"})
    dataset["training"], dataset["numTraining"] = entries, len(entries)
    write_json_atomic(folder / DATASET_FILE, dataset)
    return ExportResult(caseId, imagePath, labelPath, folder / DATASET_FILE,
                        {value: labels[str(value)] for value in values.values()})
