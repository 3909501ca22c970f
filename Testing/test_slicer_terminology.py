"""Standard terminology: the header maps class names to DICOM/SNOMED CT codes, the
segments carry them as Slicer's terminology entries, and the shipped ``.term.json``
loads in Slicer's Terminologies logic with the same codes."""

from __future__ import annotations

import json

import conftest_slicer  # noqa: F401  (puts the module folder on sys.path)
import numpy as np
import slicer
import vtk

from SARCore.terminology import TERMS, canonical_name, class_terminology, with_terminology
from SARSegmentationLib.SegmentationLogic import (
    classesFromHeader,
    labelmapToSegmentation,
    prepareOutputNode,
)
from SARSegmentationLib.Terminology import TERM_FILE, loadTerminologyFile

HEADER = {"task": "segmentation", "classes": [
    {"name": "background", "label": 0},
    {"name": "Whole_Tumor", "label": 1, "color": [1, 0, 0]},
    {"name": "edema", "label": 2, "color": [0, 1, 0]},
    {"name": "pancreatic tumor", "label": 3, "color": [0, 0, 1]},
    {"name": "blob", "label": 4, "color": [1, 1, 0]}]}


def _entry(segment) -> slicer.vtkSlicerTerminologyEntry | None:
    text = vtk.reference("")
    if not segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), text):
        return None
    entry = slicer.vtkSlicerTerminologyEntry()
    assert slicer.vtkSlicerTerminologiesModuleLogic.DeserializeTerminologyEntry(str(text), entry)
    return entry


def test_header_maps_class_names_to_codes() -> None:
    assert canonical_name("Whole_Tumor") == canonical_name("tumour") == "neoplasm"
    assert class_terminology("edema")["type"]["value"] == "79654002"
    assert class_terminology("necrosis")["type"]["value"] == "6574001"
    assert class_terminology("pancreas")["type"]["value"] == "15776009"
    pancreatic = class_terminology("Pancreatic tumour")
    assert pancreatic["type"]["value"] == "108369006"
    assert pancreatic["region"]["value"] == "15776009"
    assert class_terminology("blob") is None
    classes = with_terminology(HEADER["classes"])
    assert "terminology" not in classes[0] and "terminology" not in classes[4]
    assert classes[1]["terminology"]["type"]["meaning"] == "Neoplasm"


def test_segments_carry_standard_codes(headless_scene) -> None:
    volume = slicer.util.addVolumeFromArray(np.zeros((8, 10, 12), np.int16))
    labels = np.zeros((8, 10, 12), np.uint8)
    for value in (1, 2, 3, 4):
        labels[value, 2:5, 2:5] = value
    labelNode = slicer.util.addVolumeFromArray(labels,
                                               nodeClassName="vtkMRMLLabelMapVolumeNode")
    header = {**HEADER, "classes": with_terminology(HEADER["classes"])}
    header["classes"][2] = {**header["classes"][2], "terminology": (
        "Segmentation category and type - 3D Slicer General Anatomy list~SCT^49755003^"
        "Morphologically Altered Structure~SCT^79654002^Edema~^^~~^^~^^")}  # old models
    node = prepareOutputNode(headless_scene, volume)
    labelmapToSegmentation(labelNode, classesFromHeader(header), volume, node, show3D=False)
    segmentation = node.GetSegmentation()
    segments = {segmentation.GetNthSegment(i).GetName(): segmentation.GetNthSegment(i)
                for i in range(segmentation.GetNumberOfSegments())}
    tumor = _entry(segments["Whole_Tumor"])
    assert tumor.GetTypeObject().GetCodeValue() == "108369006"
    assert tumor.GetCategoryObject().GetCodeValue() == "49755003"
    assert tumor.GetTerminologyContextName().startswith("Segmentation category and type")
    assert _entry(segments["edema"]).GetTypeObject().GetCodeMeaning() == "Edema"
    pancreatic = _entry(segments["pancreatic tumor"])
    assert pancreatic.GetRegionObject().GetCodeValue() == "15776009"
    blob = _entry(segments["blob"])  # unknown name: Slicer's default entry, no invented code
    ours = {kind[1] for _, kind, *_ in TERMS.values()}
    assert blob is None or blob.GetTypeObject().GetCodeValue() not in ours


def test_shipped_term_file_loads_and_agrees_with_the_engine_table() -> None:
    logic = slicer.vtkSlicerTerminologiesModuleLogic()
    assert loadTerminologyFile(logic)
    data = json.loads(TERM_FILE.read_text(encoding="utf-8"))
    context = data["SegmentationCategoryTypeContextName"]
    names = vtk.vtkStringArray()
    logic.GetLoadedTerminologyNames(names)
    assert context in [names.GetValue(i) for i in range(names.GetNumberOfValues())]
    shipped = {(c["CodeValue"], t["CodingSchemeDesignator"], t["CodeValue"])
               for c in data["SegmentationCodes"]["Category"] for t in c["Type"]}
    table = {(category[1], kind[0], kind[1]) for category, kind, *_ in TERMS.values()}
    assert shipped == table
    assert logic.GetNumberOfCategoriesInTerminology(context) == len(
        data["SegmentationCodes"]["Category"])
