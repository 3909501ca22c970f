"""Standard codes (DICOM / SNOMED CT) for the classes SAR models segment.

A model header's class says what it is by name ("tumor", "edema"); names vary ("Tumour",
"whole_tumor", "WT"), codes do not. :func:`class_terminology` maps a name to the codes
Slicer stores as a segment's terminology entry: a category and a type (plus an anatomic
region where the type alone is ambiguous, e.g. a neoplasm of the pancreas). The same
entries ship as ``SARSegmentation/Resources/SARSegmentation.term.json`` for Slicer's
Terminologies module (a test checks the two agree). Concepts SNOMED CT has no code for
(the BraTS sub-regions) use the private coding scheme ``99SAR``: DICOM reserves
designators starting with ``99`` for local codes.
"""

from __future__ import annotations

import re
from typing import Any

#: Name of the terminology context in the ``.term.json`` (Slicer shows it in lists).
CONTEXT = "Segmentation category and type - SAR tumor segmentation"
#: Slicer's own anatomic context, where the region codes come from.
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"

Code = tuple[str, str, str]  # coding scheme designator, code value, code meaning

ALTERED: Code = ("SCT", "49755003", "Morphologically Altered Structure")
ANATOMY: Code = ("SCT", "123037004", "Anatomical Structure")
NEOPLASM: Code = ("SCT", "108369006", "Neoplasm")
PANCREAS: Code = ("SCT", "15776009", "Pancreas")

#: canonical name -> (category, type, anatomic region or None, RGB 0..255, synonyms)
TERMS: dict[str, tuple[Code, Code, Code | None, tuple[int, int, int], tuple[str, ...]]] = {
    "neoplasm": (ALTERED, NEOPLASM, None, (230, 50, 40),
                 ("tumor", "tumour", "whole tumor", "wt", "lesion", "glioma")),
    "edema": (ALTERED, ("SCT", "79654002", "Edema"), None, (40, 200, 60),
              ("oedema", "peritumoral edema", "ed")),
    "necrosis": (ALTERED, ("SCT", "6574001", "Necrosis"), None, (120, 60, 160),
                 ("necrotic core", "ncr")),
    "enhancing tumor": (ALTERED, ("99SAR", "ET", "Enhancing tumor"), None, (250, 220, 20),
                        ("enhancing tumour", "enhancing", "et")),
    "non-enhancing tumor": (ALTERED, ("99SAR", "NET", "Non-enhancing tumor"), None,
                            (60, 90, 230), ("non-enhancing", "non enhancing", "net",
                                            "ncr/net")),
    "tumor core": (ALTERED, ("99SAR", "TC", "Tumor core"), None, (220, 120, 30),
                   ("tumour core", "tc", "core")),
    "pancreas": (ANATOMY, PANCREAS, None, (250, 200, 130), ()),
    "pancreatic tumor": (ALTERED, NEOPLASM, PANCREAS, (200, 40, 90),
                         ("pancreatic tumour", "pancreas tumor", "pancreatic neoplasm")),
    "liver": (ANATOMY, ("SCT", "10200004", "Liver"), None, (220, 130, 100), ()),
    "spleen": (ANATOMY, ("SCT", "78961009", "Spleen"), None, (160, 90, 90), ()),
    "kidney": (ANATOMY, ("SCT", "64033007", "Kidney"), None, (190, 110, 80), ("kidneys",)),
    "lung": (ANATOMY, ("SCT", "39607008", "Lung"), None, (200, 180, 200), ("lungs",)),
    "nodule": (ALTERED, ("SCT", "27925004", "Nodule"), None, (240, 150, 30),
               ("lung nodule", "pulmonary nodule")),
}


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", " ", str(name).strip().lower())


_LOOKUP = {_key(alias): canonical for canonical, entry in TERMS.items()
           for alias in (canonical, *entry[4])}


def canonical_name(name: str) -> str | None:
    """``"Whole_Tumor"`` -> ``"neoplasm"``; ``None`` for a name this table does not know."""
    return _LOOKUP.get(_key(name))


def _code(code: Code) -> dict[str, str]:
    return {"scheme": code[0], "value": code[1], "meaning": code[2]}


def class_terminology(name: str) -> dict[str, Any] | None:
    """The terminology entry of a class name as the model header stores it, or ``None``.

    ``{"context": ..., "category": {"scheme", "value", "meaning"}, "type": {...},
    "region": {...} (optional), "anatomic_context": ...}``.
    """
    canonical = canonical_name(name)
    if canonical is None:
        return None
    category, kind, region, _, _ = TERMS[canonical]
    entry: dict[str, Any] = {"context": CONTEXT, "category": _code(category),
                             "type": _code(kind)}
    if region is not None:
        entry["anatomic_context"] = ANATOMIC_CONTEXT
        entry["region"] = _code(region)
    return entry


def with_terminology(classes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Header class entries with ``terminology`` added where the name is known."""
    out = []
    for item in classes:
        item = dict(item)
        if "terminology" not in item and int(item.get("label", 0)) > 0:
            entry = class_terminology(str(item.get("name", "")))
            if entry is not None:
                item["terminology"] = entry
        out.append(item)
    return out
