"""Segment every volume of a folder into ``.seg.nrrd`` files (no dialogs, no GUI).

Files are segmented in chunks (one engine run per chunk, so the model loads once per
chunk and the scene never holds more than a chunk's volumes); a file that cannot be read
or segmented is reported and the others go on. Results are written from the segmentation
nodes, so they carry the same names, colors and terminology as in the GUI.

As ``sar segment``: label maps beside their images (``<case>_label.nii.gz``,
``*_seg*``, ...) are not segmented, and ``<name>.sar.json`` beside each result records
the sha256 of the model and the input(s), so a rerun skips what the same model already
made from the same files and refuses (unless ``overwrite``) a result made from something
else. A multi-sequence model (its header names several ``sequences``) takes case folders
instead, one file per sequence found by name as ``sar segment`` finds them (BraTS
layouts), and writes ``<case>.seg.nrrd``; a case lacking a sequence is reported and the
others go on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from SARSegmentationLib import MrmlIO
from SARSegmentationLib.Engine import ensureEngineImportable
from SARSegmentationLib.Logic import SARLogic
from SARSegmentationLib.ModelRegistry import readHeader
from SARSegmentationLib.SequenceInputs import modelSequences

ensureEngineImportable()
from SARCore.atomic import write_json_atomic  # noqa: E402
from SARCore.errors import DataError, SARError  # noqa: E402
from SARCore.inference.cases import multi_sequence_cases  # noqa: E402
from SARCore.io.checksum import sha256_file  # noqa: E402
from SARCore.io.discovery import LABEL_TOKENS, SKIP_NAMES, name_tokens  # noqa: E402

log = logging.getLogger(__name__)
CHUNK = 8


@dataclass
class BatchReport:
    written: dict[Path, Path] = field(default_factory=dict)  # input -> .seg.nrrd
    failed: dict[Path, str] = field(default_factory=dict)  # input -> why
    skipped: dict[Path, Path] = field(default_factory=dict)  # input -> existing .seg.nrrd

    @property
    def exitCode(self) -> int:
        """0 when every file was segmented, 1 when any failed, 2 when there was none."""
        if not self.written and not self.failed and not self.skipped:
            return 2
        return 1 if self.failed else 0


def volumeFiles(folder: Path) -> list[Path]:
    """The scans of ``folder``: volume files that are not label maps or brain masks."""
    return sorted(p for p in Path(folder).iterdir() if MrmlIO.isVolumeFile(p)
                  and not set(name_tokens(p)) & LABEL_TOKENS
                  and not any(skip in p.name.lower() for skip in SKIP_NAMES))


@dataclass
class BatchCase:
    """One result to make: its name, the file(s) it reads (one per sequence) or why not."""

    name: str
    files: list[Path]
    problem: str = ""

    @property
    def source(self) -> Path:
        """What messages name: the file, or a multi-sequence case's folder."""
        return self.files[0] if len(self.files) == 1 else self.files[0].parent


def batchCases(folder: Path, sequences: list[str]) -> list[BatchCase]:
    """The cases of ``folder``: one per scan, or for a multi-sequence model one per case
    folder with a file for each sequence (problems kept per case, not raised)."""
    if not sequences:
        return [BatchCase(MrmlIO.fileStem(p), [p]) for p in volumeFiles(folder)]
    cases = []
    for case in multi_sequence_cases(folder, sequences):
        files = [s for s in case.sources if isinstance(s, Path)]
        if case.problem or len(files) != len(sequences):
            why = case.problem or "a DICOM series: convert it to NIfTI or NRRD for a batch"
            cases.append(BatchCase(case.case_id, [case.source], why))
        else:
            cases.append(BatchCase(case.case_id, files))
    return cases


def _record(target: Path) -> Path:
    return target.with_name(target.name[:-len(".seg.nrrd")] + ".sar.json")


def _alreadyDone(path: Path, target: Path, madeBy: dict) -> bool:
    """True when ``target`` came from this model and input; raises when from another."""
    if not target.exists():
        return False
    try:
        recorded = json.loads(_record(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if recorded == madeBy:
        return True
    why = "came from another model or input" if recorded is not None else \
        f"has no record of its model and input ({_record(target).name})"
    raise DataError(f"output already exists and {why}", target,
                    "pass --overwrite to replace it, or choose another --out")


def segmentFolder(inputDir: str | Path, modelPath: str | Path, outputDir: str | Path,
                  device: str = "auto", fast: bool = False, scene=None,
                  python: str | None = None, chunk: int = CHUNK,
                  overwrite: bool = False) -> BatchReport:
    """Segment each case of ``inputDir`` (see :func:`batchCases`) to
    ``outputDir/<name>.seg.nrrd``."""
    inputDir, outputDir = Path(inputDir), Path(outputDir)
    if not inputDir.is_dir():
        raise DataError("input folder not found", inputDir)
    report = BatchReport()
    logic = SARLogic(scene, python)
    modelSha = sha256_file(modelPath)
    sequences = modelSequences(readHeader(Path(modelPath), python))
    todo = []
    for case in batchCases(inputDir, sequences):
        if case.problem:
            report.failed[case.source] = case.problem
            continue
        target = outputDir / f"{case.name}.seg.nrrd"
        shas = [sha256_file(p) for p in case.files]
        madeBy = {"model_sha256": modelSha, "input_sha256": shas[0] if len(shas) == 1
                  else shas}
        try:
            if not overwrite and _alreadyDone(case.source, target, madeBy):
                report.skipped[case.source] = target
                continue
        except SARError as exc:
            report.failed[case.source] = str(exc)
            continue
        todo.append((case, target, madeBy))
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        outcomes = logic.processFiles([c.files if len(c.files) > 1 else c.files[0]
                                       for c, _, _ in part], modelPath, device, fast)
        for (case, target, madeBy), outcome in zip(part, outcomes):
            if outcome.segmentation is None:
                report.failed[case.source] = outcome.error
                log.error("%s: %s", case.source, outcome.error)
                continue
            try:
                _record(target).unlink(missing_ok=True)
                report.written[case.source] = MrmlIO.saveNode(outcome.segmentation, target)
                write_json_atomic(_record(target), madeBy)
            except SARError as exc:  # one unwritable file must not stop the rest
                report.failed[case.source] = str(exc)
        for outcome in outcomes:  # keep memory bounded: drop the chunk's nodes
            MrmlIO.removeNodes(logic.scene, outcome.segmentation, *outcome.volumes)
    return report
