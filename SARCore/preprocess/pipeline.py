"""Batch preprocessing: cases in, ``<case_id>.nii.gz`` (+ ``_label``) and manifest out.

Resumable: a case already done from the same source bytes with the same preset is
skipped. A bad case is recorded with its reason and the batch goes on; its outputs are
removed so nothing half-valid is left under its name.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from SARCore.atomic import remove_stale_temporaries
from SARCore.errors import DataError
from SARCore.io.checksum import sha256_file, sha256_files
from SARCore.io.discovery import CaseSpec
from SARCore.io.geometry import Geometry
from SARCore.io.readers import read_image, read_label
from SARCore.io.writers import write_image
from SARCore.preprocess.image import check_label_grid, preprocess_image
from SARCore.preprocess.intensity import statistics
from SARCore.preprocess.manifest import is_current, load_manifest, save_manifest
from SARCore.preprocess.presets import Preset
from SARCore.progress import NullReporter, Reporter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseFailure:
    case_id: str
    file: str | None
    reason: str


@dataclass
class PreprocessReport:
    """What a :func:`preprocess_cases` run did, case by case."""

    out_dir: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[CaseFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        text = (f"{len(self.done)} preprocessed, {len(self.skipped)} already done, "
                f"{len(self.failed)} failed")
        return text + "".join(f"\n  {f.case_id}: {f.reason}" for f in self.failed)


def output_names(case_id: str, has_label: bool) -> dict[str, str | None]:
    safe = case_id.replace("/", "_").replace("\\", "_")
    return {"image": f"{safe}.nii.gz", "label": f"{safe}_label.nii.gz" if has_label else None}


def preprocess_cases(cases: list[CaseSpec], out_dir: str | Path, preset: Preset,
                     reporter: Reporter | None = None) -> PreprocessReport:
    """Preprocess ``cases`` into ``out_dir`` with ``preset``; never raises for one bad case."""
    reporter = reporter or NullReporter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    manifest = load_manifest(out)
    report = PreprocessReport(out)
    preset_dict = preset.to_dict()
    for step, case in enumerate(cases):
        reporter.progress(step, len(cases), case.case_id, stage="preprocess")
        try:
            if case.problem:
                raise DataError(case.problem)
            checksums = _source_checksums(case)
            if is_current(manifest, out, case.case_id, checksums, preset_dict):
                report.skipped.append(case.case_id)
                continue
            entry = _process_case(case, out, preset, checksums)
        except (DataError, MemoryError) as exc:
            failure = _failure(case, exc)
            log.warning("%s failed: %s", case.case_id, failure.reason)
            reporter.log(f"failed: {case.case_id}: {failure.reason}", level="error",
                         kind=type(exc).__name__, file=failure.file, case=case.case_id)
            _forget(manifest, out, case.case_id)
            manifest["failed"][case.case_id] = {"file": failure.file, "reason": failure.reason}
            report.failed.append(failure)
        else:
            manifest["cases"][case.case_id] = entry
            manifest["failed"].pop(case.case_id, None)
            report.done.append(case.case_id)
        save_manifest(out, manifest)
    reporter.progress(len(cases), len(cases), "done", stage="preprocess")
    return report


def _source_checksums(case: CaseSpec) -> dict[str, str | None]:
    for path in (*case.images, *([case.label] if case.label else [])):
        if not path.is_file():
            raise DataError("file not found", path)
    return {"image_source": sha256_files(case.images),
            "label_source": sha256_file(case.label) if case.label else None}


def _process_case(case: CaseSpec, out: Path, preset: Preset,
                  checksums: dict[str, str | None]) -> dict[str, Any]:
    start = time.monotonic()
    image = read_image(case.images if len(case.images) > 1 else case.images[0])
    label = read_label(case.label) if case.label else None
    brain_mask = (read_label(case.brain_mask) if case.brain_mask is not None
                  and preset.normalization == "zscore_nonzero" else None)
    try:
        if label is not None:
            check_label_grid(image, label)
    except DataError as exc:
        raise DataError(exc.problem, case.label, exc.hint) from exc
    try:
        result, result_label = preprocess_image(image, preset, label, brain_mask)
    except DataError as exc:  # the pure function knows no file names: add the case's
        raise DataError(exc.problem, exc.path or case.source, exc.hint) from exc
    names = output_names(case.case_id, label is not None)
    written = []
    try:
        for key, volume in (("image", result), ("label", result_label)):
            if volume is not None:
                written.append(write_image(volume, out / names[key]))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return _entry(case, preset, checksums, names, image, result, result_label,
                  time.monotonic() - start, out)


def _entry(case: CaseSpec, preset: Preset, checksums: dict[str, str | None],
           names: dict[str, str | None], image: sitk.Image, result: sitk.Image,
           result_label: sitk.Image | None, seconds: float, out: Path) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "status": "done",
        "sources": {"image": [str(p) for p in case.images],
                    "label": str(case.label) if case.label else None},
        "modality": case.modality or preset.modality,
        "preset": preset.to_dict(),
        "original": {**Geometry.of(image).to_dict(),
                     "pixel_type": image.GetPixelIDTypeAsString()},
        "preprocessed": Geometry.of(result).to_dict(),
        "intensity": {"before": statistics(sitk.GetArrayViewFromImage(image)),
                      "after": statistics(sitk.GetArrayViewFromImage(result))},
        "labels": None if result_label is None else label_values(result_label),
        "outputs": names,
        "sha256": {**checksums,
                   "image": sha256_file(out / names["image"]),
                   "label": sha256_file(out / names["label"]) if names["label"] else None},
        "seconds": round(seconds, 2),
    }


def label_values(label: sitk.Image) -> list[int]:
    """The distinct values of an integer label image (bincount: no 70M-voxel sort)."""
    values = sitk.GetArrayViewFromImage(label).reshape(-1)
    if values.dtype in (np.uint8, np.uint16):
        return [int(v) for v in np.flatnonzero(np.bincount(values))]
    return [int(v) for v in np.unique(values)]


def _failure(case: CaseSpec, exc: BaseException) -> CaseFailure:
    if isinstance(exc, MemoryError):
        return CaseFailure(case.case_id, str(case.source),
                           f"{case.source}: out of memory (try a coarser --spacing)")
    path = getattr(exc, "path", None)
    return CaseFailure(case.case_id, path or str(case.source), str(exc))


def _forget(manifest: dict[str, Any], out: Path, case_id: str) -> None:
    """Drop a case's entry and outputs (they no longer match its source)."""
    manifest["cases"].pop(case_id, None)
    for name in output_names(case_id, True).values():
        with contextlib.suppress(OSError):
            (out / name).unlink()
