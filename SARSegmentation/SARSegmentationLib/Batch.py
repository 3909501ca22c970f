"""Segment every volume of a folder into ``.seg.nrrd`` files (no dialogs, no GUI).

Files are segmented in chunks (one engine run per chunk, so the model loads once per
chunk and the scene never holds more than a chunk's volumes); a file that cannot be read
or segmented is reported and the others go on. Results are written from the segmentation
nodes, so they carry the same names, colors and terminology as in the GUI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from SARSegmentationLib import MrmlIO
from SARSegmentationLib.Engine import ensureEngineImportable
from SARSegmentationLib.Logic import SARLogic

ensureEngineImportable()
from SARCore.errors import DataError, SARError  # noqa: E402

log = logging.getLogger(__name__)
CHUNK = 8


@dataclass
class BatchReport:
    written: dict[Path, Path] = field(default_factory=dict)  # input -> .seg.nrrd
    failed: dict[Path, str] = field(default_factory=dict)  # input -> why

    @property
    def exitCode(self) -> int:
        """0 when every file was segmented, 1 when any failed, 2 when there was none."""
        if not self.written and not self.failed:
            return 2
        return 1 if self.failed else 0


def volumeFiles(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if MrmlIO.isVolumeFile(p))


def segmentFolder(inputDir: str | Path, modelPath: str | Path, outputDir: str | Path,
                  device: str = "auto", fast: bool = False, scene=None,
                  python: str | None = None, chunk: int = CHUNK) -> BatchReport:
    """Segment each volume file of ``inputDir`` to ``outputDir/<name>.seg.nrrd``."""
    inputDir, outputDir = Path(inputDir), Path(outputDir)
    if not inputDir.is_dir():
        raise DataError("input folder not found", inputDir)
    report = BatchReport()
    logic = SARLogic(scene, python)
    files = volumeFiles(inputDir)
    for start in range(0, len(files), chunk):
        outcomes = logic.processFiles(files[start:start + chunk], modelPath, device, fast)
        for outcome in outcomes:
            if outcome.segmentation is None:
                report.failed[outcome.path] = outcome.error
                log.error("%s: %s", outcome.path, outcome.error)
                continue
            target = outputDir / f"{MrmlIO.fileStem(outcome.path)}.seg.nrrd"
            try:
                report.written[outcome.path] = MrmlIO.saveNode(outcome.segmentation, target)
            except SARError as exc:  # one unwritable file must not stop the rest
                report.failed[outcome.path] = str(exc)
        for outcome in outcomes:  # keep memory bounded: drop the chunk's nodes
            MrmlIO.removeNodes(logic.scene, outcome.segmentation, outcome.volume)
    return report
