"""SARCore's label maps become segmentation nodes with the model's names and colors.

The engine writes ``<case>_label.nii.gz`` on the input's own grid; it is imported into a
``vtkMRMLSegmentationNode`` whose reference geometry is the input volume, one segment per
model class (classes the model did not find get an empty segment, ready to be painted in
the Segment Editor), named and colored from the model header, with the class label kept
in the ``SAR.label`` tag and the standard terminology entry (DICOM / SNOMED CT codes) from
the header or, for a known class name, from :mod:`SARSegmentationLib.Terminology`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import slicer
import vtk

from SARSegmentationLib import MrmlIO
from SARSegmentationLib.Engine import ensureEngineImportable
from SARSegmentationLib.Terminology import classEntry

ensureEngineImportable()
from SARCore.errors import DataError, ModelFileError, SARError  # noqa: E402

log = logging.getLogger(__name__)

#: Segment tag holding the model's label value of the class.
LABEL_TAG = "SAR.label"


class SegmentationExistsError(SARError):
    """The chosen output segmentation already has segments and overwrite was not allowed."""


@dataclass(frozen=True)
class SegmentClass:
    """One model class as a segment: name, label value in the label map, RGB in 0..1."""

    name: str
    label: int
    color: tuple[float, float, float]
    terminology: str = ""


def classesFromHeader(header: dict[str, Any]) -> list[SegmentClass]:
    """The ``classes`` of a segmentation model header (background excluded), by label."""
    raw = header.get("classes")
    if not isinstance(raw, list) or not raw:
        raise ModelFileError("the model header lists no classes; is this a pre-training "
                             "model rather than a segmentation model?", header.get("name"))
    classes = []
    for item in raw:
        try:
            label = int(item["label"])
            name = str(item["name"])
            color = tuple(float(c) for c in item.get("color", (1.0, 1.0, 0.0)))[:3]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"malformed class entry {item!r} in the model header",
                                 header.get("name")) from exc
        if label <= 0:
            continue  # background is not a segment
        classes.append(SegmentClass(name, label, color,
                                    classEntry(name, item.get("terminology"))))
    return sorted(classes, key=lambda c: c.label)


def hasSegments(segmentationNode) -> bool:
    return (segmentationNode is not None
            and segmentationNode.GetSegmentation().GetNumberOfSegments() > 0)


def checkCanFill(segmentationNode, overwrite: bool) -> None:
    """Refuse to replace a segmentation that has segments unless ``overwrite`` is set.

    The widget catches :class:`SegmentationExistsError`, asks the user, and calls again
    with ``overwrite=True``; scripts decide up front.
    """
    if hasSegments(segmentationNode) and not overwrite:
        raise SegmentationExistsError(
            f"segmentation {segmentationNode.GetName()!r} already has "
            f"{segmentationNode.GetSegmentation().GetNumberOfSegments()} segments",
            hint="allow overwriting, or leave the output empty to create a new segmentation")


def prepareOutputNode(scene, referenceVolume, segmentationNode=None, overwrite: bool = False,
                      name: str | None = None):
    """The segmentation node to fill: the given one (emptied if allowed) or a new one."""
    if segmentationNode is None:
        segmentationNode = scene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode",
            scene.GenerateUniqueName(name or f"{referenceVolume.GetName()} SAR segmentation"))
    else:
        checkCanFill(segmentationNode, overwrite)
        segmentationNode.GetSegmentation().RemoveAllSegments()
    segmentationNode.CreateDefaultDisplayNodes()
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolume)
    return segmentationNode


def labelmapToSegmentation(labelmapNode, classes: list[SegmentClass], referenceVolume,
                           segmentationNode, show3D: bool = True):
    """Fill ``segmentationNode`` (already prepared) from a label map node."""
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    segmentation = segmentationNode.GetSegmentation()
    if not logic.ImportLabelmapToSegmentationNode(labelmapNode, segmentationNode):
        raise DataError("the label map could not be imported into a segmentation",
                        labelmapNode.GetName())
    byLabel = {c.label: c for c in classes}
    found: dict[int, str] = {}
    for index in range(segmentation.GetNumberOfSegments()):
        segmentId = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segmentId)
        label = segment.GetLabelValue()  # the import keeps the source label value
        found[label] = segmentId
        known = byLabel.get(label)
        if known is None:
            log.warning("label %d is not a class of the model; kept as %r", label,
                        segment.GetName())
            continue
        _describeSegment(segment, known)
    for cls in classes:
        if cls.label not in found:  # the model found none: an empty segment to paint into
            segmentId = segmentation.AddEmptySegment("", cls.name, list(cls.color))
            _describeSegment(segmentation.GetSegment(segmentId), cls)
            found[cls.label] = segmentId
    for position, label in enumerate(sorted(found)):
        segmentation.SetSegmentIndex(found[label], position)
    if show3D:
        segmentationNode.CreateClosedSurfaceRepresentation()
    return segmentationNode


def _describeSegment(segment, cls: SegmentClass) -> None:
    segment.SetName(cls.name)
    segment.SetColor(*cls.color)
    segment.SetNameAutoGenerated(False)
    segment.SetColorAutoGenerated(False)
    segment.SetTag(LABEL_TAG, str(cls.label))
    if cls.terminology:
        segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), cls.terminology)


def importLabelmapFile(scene, labelPath, classes: list[SegmentClass], referenceVolume,
                       segmentationNode=None, overwrite: bool = False, show3D: bool = True,
                       name: str | None = None):
    """Read an engine label map file and turn it into a segmentation node."""
    target = prepareOutputNode(scene, referenceVolume, segmentationNode, overwrite, name)
    labelNode = MrmlIO.loadVolume(scene, labelPath, name="SAR label (temporary)",
                                  labelmap=True)
    try:
        return labelmapToSegmentation(labelNode, classes, referenceVolume, target, show3D)
    finally:
        MrmlIO.removeNodes(scene, labelNode)


def segmentLabel(segment) -> int | None:
    """The model label a segment came from (``SAR.label`` tag), or ``None``."""
    value = vtk.reference("")
    if not segment.GetTag(LABEL_TAG, value):
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def segmentInfo(segmentationNode) -> list[dict[str, Any]]:
    """Name, color and SAR label of every segment, in order (for tests and the panel)."""
    segmentation = segmentationNode.GetSegmentation()
    info = []
    for index in range(segmentation.GetNumberOfSegments()):
        segmentId = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segmentId)
        info.append({"id": segmentId, "name": segment.GetName(),
                     "color": tuple(segment.GetColor()), "label": segmentLabel(segment)})
    return info
