"""Multi-sequence models in the panel: one volume per sequence the model header names.

A BraTS-style model takes several co-registered sequences (e.g. FLAIR and T1c). The
volumes are matched to the header's ``sequences`` by name where possible (``Flair``,
``t2f``, ``T1c``, ``t1gd``... as the engine's discovery reads file names), resampled onto
the first one's grid when their grids differ, and written as one BraTS-style case folder
(``<case>/<sequence>.nrrd``) that the engine joins back into one multi-channel input.
"""

from __future__ import annotations

import re
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


def matchVolumes(sequences: list[str], candidates: list, chosen: list | None = None) -> list:
    """One volume per sequence: ``chosen`` (in order) when given in full, else matched by
    name among ``candidates``; a sequence with no volume is a clear error."""
    if chosen and len([v for v in chosen if v is not None]) == len(sequences):
        return list(chosen)
    picked = []
    for sequence in sequences:
        match = next((v for v in candidates if v is not None and v not in picked
                      and sequenceOf(v.GetName()) == sequence), None)
        if match is None:
            names = ", ".join(v.GetName() for v in candidates if v is not None) or "none"
            raise DataError(f"no volume for the model's {sequence} sequence (volumes: {names})",
                            hint="name the volumes after their sequences or choose them")
        picked.append(match)
    return picked


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
