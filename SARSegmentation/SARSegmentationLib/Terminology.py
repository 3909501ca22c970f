"""Standard terminology (DICOM / SNOMED CT codes) on the segments this module makes.

A model header's class may carry a ``terminology`` entry (see :mod:`SARCore.terminology`:
category, type and optional anatomic region codes) or, from older models, Slicer's
serialized string; classes without one get the codes of their name when the name is
known. The result is stored on the segment as Slicer's terminology entry string, as
TotalSegmentator and MONAIAuto3DSeg do, so the Segment Editor, DICOM SEG export and
other modules see the codes, not just a name. The same codes ship as
``Resources/SARSegmentation.term.json``, loaded into Slicer's Terminologies module at
start-up so they can be picked by hand too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from SARSegmentationLib.Engine import ensureEngineImportable

ensureEngineImportable()
from SARCore.terminology import class_terminology  # noqa: E402  (pure Python, no torch)

TERM_FILE = Path(__file__).resolve().parent.parent / "Resources" / "SARSegmentation.term.json"


def _code(code: Any) -> str:
    if not isinstance(code, dict):
        return "^^"
    return "^".join(str(code.get(k, "")) for k in ("scheme", "value", "meaning"))


def serializeEntry(entry: Any) -> str:
    """A header terminology entry as Slicer's string
    ``context~category~type~typeModifier~anatomicContext~region~regionModifier``
    (each code ``scheme^value^meaning``); a string is taken as already serialized."""
    if isinstance(entry, str):
        return entry
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), dict):
        return ""
    return "~".join([str(entry.get("context", "")), _code(entry.get("category")),
                     _code(entry.get("type")), "^^", str(entry.get("anatomic_context", "")),
                     _code(entry.get("region")), "^^"])


def classEntry(name: str, headerEntry: Any = None) -> str:
    """The terminology string of a model class: the header's, else the one of its name."""
    return serializeEntry(headerEntry) or serializeEntry(class_terminology(name))


def loadTerminologyFile(terminologiesLogic, path: str | Path = TERM_FILE) -> bool:
    """Load the shipped ``.term.json`` into Slicer's Terminologies logic."""
    loader = (getattr(terminologiesLogic, "LoadTerminologyFromFile", None)
              or terminologiesLogic.LoadContextFromFile)
    return bool(loader(str(path)))
