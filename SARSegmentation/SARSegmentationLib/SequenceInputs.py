"""Multi-sequence models in the panel: one volume per sequence the model header names.

A BraTS-style model takes several co-registered sequences (e.g. FLAIR and T1c). The
volumes are matched to the header's ``sequences`` by name where possible (``Flair``,
``t2f``, ``T1c``, ``t1gd``... as the engine's discovery reads file names), resampled onto
the first one's grid when their grids differ, and written as one BraTS-style case folder
(``<case>/<sequence>.nrrd``) that the engine joins back into one multi-channel input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import slicer

from SARSegmentationLib import MrmlIO
from SARSegmentationLib.Engine import ensureEngineImportable

ensureEngineImportable()
from SARCore.errors import DataError  # noqa: E402
from SARCore.io.discovery import SEQUENCE_TOKENS  # noqa: E402


def modelSequences(header: dict[str, Any]) -> list[str]:
    """The sequences a model takes, in channel order (``[]`` for a one-channel model)."""
    channels = int(header.get("in_channels", 1) or 1)
    sequences = [str(s).lower() for s in header.get("sequences") or []]
    if channels > 1 and len(sequences) != channels:
        raise DataError(f"the model takes {channels} input channels but its header names "
                        f"{len(sequences)} sequences", header.get("name"))
    return sequences if channels > 1 else []


def _tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", name.lower()) if t}


def sequenceOf(name: str) -> str | None:
    """The sequence a volume name says (``"pat1 Flair"`` -> ``"flair"``), if exactly one."""
    found = [seq for seq, words in SEQUENCE_TOKENS.items() if _tokens(name) & words]
    return found[0] if len(found) == 1 else None


@dataclass
class SequenceSlot:
    """One sequence a model takes and the volume that feeds it (``None``: none found)."""

    sequence: str
    volume: Any = None
    chosen: bool = False  # picked by the user, not guessed from the volume's name


def sceneVolumes(scene) -> list:
    """Every scalar volume of ``scene`` (label maps excluded), in scene order."""
    className = "vtkMRMLScalarVolumeNode"
    nodes = [scene.GetNthNodeByClass(i, className)
             for i in range(scene.GetNumberOfNodesByClass(className))]
    return [n for n in nodes if not n.IsA("vtkMRMLLabelMapVolumeNode")]


def guessSlots(sequences: list[str], candidates: list, preferred: Any = None,
               chosen: dict[str, Any] | None = None) -> list[SequenceSlot]:
    """One slot per sequence: the user's choice where made, else the first volume named
    after the sequence that no other guess took (a user's pick never moves another
    slot's guess: a volume picked twice is reported, not silently swapped); the
    ``preferred`` volume (the panel's input volume) fills the first slot left empty."""
    chosen = {k: v for k, v in (chosen or {}).items() if v is not None}
    slots = [SequenceSlot(s, chosen.get(s), s in chosen) for s in sequences]
    ordered = [v for v in [preferred, *candidates] if v is not None]
    for slot in slots:
        if slot.volume is None:
            taken = [s.volume for s in slots if not s.chosen]
            slot.volume = next((v for v in ordered if v not in taken
                                and sequenceOf(v.GetName()) == slot.sequence), None)
    empty = [s for s in slots if s.volume is None]
    if preferred is not None and empty and all(s.volume is not preferred for s in slots):
        empty[0].volume = preferred
    return slots


def slotVolumes(slots: list[SequenceSlot], candidates: list = ()) -> list:
    """The slots' volumes in channel order; a sequence without a volume, or one volume
    in two slots, is a clear error (a model fed the same scan twice runs but is wrong)."""
    for slot in slots:
        if slot.volume is None:
            names = ", ".join(v.GetName() for v in candidates if v is not None) or "none"
            raise DataError(f"no volume for the model's {slot.sequence} sequence "
                            f"(volumes: {names})",
                            hint="choose one for each sequence, or name the volumes after "
                                 "their sequences")
    seen: dict[str, str] = {}
    for slot in slots:
        key = slot.volume.GetID() or str(id(slot.volume))
        if key in seen:
            raise DataError(f"the same volume is chosen for the {seen[key]} and "
                            f"{slot.sequence} sequences", slot.volume.GetName(),
                            hint="each sequence needs its own volume")
        seen[key] = slot.sequence
    return [slot.volume for slot in slots]


def matchVolumes(sequences: list[str], candidates: list, chosen: list | None = None) -> list:
    """One volume per sequence: ``chosen`` (in order) when given in full, else matched by
    name among ``candidates``; a sequence with no volume is a clear error."""
    picks = dict(zip(sequences, chosen or []))
    return slotVolumes(guessSlots(sequences, candidates, chosen=picks), candidates)


def writeCase(volumes: list, sequences: list[str], folder: Path) -> Path:
    """``folder/<sequence>.nrrd`` per sequence, all on the first volume's grid."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = volumes[0]
    scene = reference.GetScene()
    for volume, sequence in zip(volumes, sequences):
        onGrid = volume
        if volume is not reference and not _sameGrid(volume, reference):
            onGrid = slicer.vtkSlicerVolumesLogic.ResampleVolumeToReferenceVolume(volume,
                                                                                  reference)
        try:
            MrmlIO.saveNode(onGrid, folder / f"{sequence}.nrrd", compress=False)
        finally:
            if onGrid is not volume and onGrid.GetScene() is not None:
                MrmlIO.removeNodes(scene, onGrid)
    return folder


def _sameGrid(a, b) -> bool:
    import numpy as np
    import vtk

    ma, mb = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    a.GetIJKToRASMatrix(ma)
    b.GetIJKToRASMatrix(mb)
    same = np.allclose([ma.GetElement(r, c) for r in range(4) for c in range(4)],
                       [mb.GetElement(r, c) for r in range(4) for c in range(4)], atol=1e-4)
    return same and a.GetImageData().GetDimensions() == b.GetImageData().GetDimensions()
