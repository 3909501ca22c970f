"""Segment a batch of cases into an output folder; one bad case never stops the others.

Per case: ``<out>/<case_id>_label.nii.gz`` (or ``_label.nrrd``) with exactly the input
scan's geometry, and ``<out>/<case_id>.seg.nrrd`` (named, colored segments for 3D
Slicer), and ``<out>/<case_id>.sar.json``, the sha256 of the model file and of every
input file, and the model's classes (read by ``evaluate``). A case whose outputs exist
is skipped when that record matches the model and input given now (rerunning a batch
finishes what is missing), and refused (the case fails, naming the file) when they came
from another model or input, unless ``overwrite`` is set. All files are written
atomically; if the second cannot be written the first is removed, so a case has both
outputs or neither; a run killed between the two leaves one, and a rerun then redoes
that case instead of refusing it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk
import torch

from SARCore.atomic import remove_stale_temporaries, write_json_atomic
from SARCore.errors import DataError, SARError
from SARCore.inference.cases import InferenceCase, gather_cases, input_warnings
from SARCore.inference.model import SegmentationModel, load_segmentation_model
from SARCore.inference.seg_nrrd import write_seg_nrrd
from SARCore.inference.segment import Progress, Segmenter, SegmentOptions
from SARCore.inference.uncertainty import segment_with_confidence
from SARCore.io.checksum import sha256_file, sha256_files
from SARCore.io.readers import read_image, source_files
from SARCore.io.writers import check_storable, write_image
from SARCore.progress import NullReporter, Reporter
from SARCore.training.device import unsupported_on_device

log = logging.getLogger(__name__)

#: Progress steps per case (the bar moves with the windows inside a case).
STEPS_PER_CASE = 100


@dataclass
class SegmentReport:
    """What :func:`segment_cases` did: outputs and failures, case by case."""

    out_dir: Path
    outputs: list[dict[str, Any]] = field(default_factory=list)  # case, label, segmentation
    failed: list[dict[str, Any]] = field(default_factory=list)  # case, error, file
    skipped: list[dict[str, Any]] = field(default_factory=list)  # case, label, segmentation
    empty: list[str] = field(default_factory=list)  # cases with no foreground voxel

    @property
    def ok(self) -> bool:
        return not self.failed


def output_paths(out_dir: str | Path, case_id: str, label_format: str = "nii.gz"
                 ) -> tuple[Path, Path]:
    """``(<out>/<case_id>_label.<format>, <out>/<case_id>.seg.nrrd)``."""
    safe = case_id.replace("/", "_").replace("\\", "_")
    out = Path(out_dir)
    return out / f"{safe}_label.{label_format}", out / f"{safe}.seg.nrrd"


def record_path(label_path: Path) -> Path:
    """``<out>/<case_id>.sar.json`` beside ``<out>/<case_id>_label.<format>``."""
    stem = label_path.name.split("_label.")[0]
    return label_path.with_name(f"{stem}.sar.json")


def provenance(case: InferenceCase, model_sha256: str) -> dict[str, Any]:
    """What made a case's outputs: the model file's and each input's sha256."""
    return {"model_sha256": model_sha256,
            "inputs_sha256": [sha256_files(source_files(s)) for s in case.sources]}


def recorded_classes(model: SegmentationModel) -> list[dict[str, Any]]:
    """The classes in a case's record (name, label value, truth rule), so ``evaluate``
    can name its columns and map the truth without the model file."""
    rules = {int(c.get("label", i)): c.get("source_labels")
             for i, c in enumerate(model.header.get("classes") or [], start=1)
             if isinstance(c, dict)}
    return [{"name": c.name, "label": c.label, "source_labels": rules.get(c.label)}
            for c in model.classes]


def segment_cases(inputs: Sequence[str | Path], model_path: str | Path, out_dir: str | Path,
                  options: SegmentOptions | None = None, reporter: Reporter | None = None
                  ) -> SegmentReport:
    """Segment every case behind ``inputs`` with the model file at ``model_path``."""
    options = options or SegmentOptions()
    reporter = reporter or NullReporter()
    segmenter = Segmenter(load_segmentation_model(model_path), options)
    cases = gather_cases(inputs, segmenter.model, options.allow_outside_paths)
    model_sha256 = sha256_file(model_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    report = SegmentReport(out)
    total = STEPS_PER_CASE * len(cases)
    reporter.log(f"{len(cases)} case(s), model {segmenter.model.path.name}, device "
                 f"{segmenter.device.type}, output {out}")
    for index, case in enumerate(cases):
        base = index * STEPS_PER_CASE
        reporter.progress(base, total, case.case_id, stage="segment")
        progress = _window_progress(reporter, case.case_id, base, total)
        for warning in input_warnings(case, segmenter.model):
            reporter.log(f"warning: {warning}")
        _run_case(case, segmenter, out, options, progress, report, reporter, model_sha256)
    reporter.progress(total, total, "done", stage="segment")
    return report


def _window_progress(reporter: Reporter, case_id: str, base: int, total: int) -> Progress:
    """Window counts inside one case -> steps of the batch's progress bar."""
    def progress(done: int, count: int) -> None:
        step = base + min(STEPS_PER_CASE - 1, STEPS_PER_CASE * done // max(count, 1))
        reporter.progress(step, total, f"{case_id}: window {done}/{count}", stage="segment")

    return progress


def _run_case(case: InferenceCase, segmenter: Segmenter, out: Path, options: SegmentOptions,
              progress: Progress, report: SegmentReport, reporter: Reporter,
              model_sha256: str) -> None:
    start = time.monotonic()
    try:
        if case.problem:
            raise DataError(case.problem)
        made_by = provenance(case, model_sha256)
        label_path, seg_path = output_paths(out, case.case_id, options.label_format)
        if not options.overwrite and _already_done(label_path, seg_path, made_by):
            reporter.log(f"{case.case_id}: skipped, {label_path.name} and {seg_path.name} "
                         "came from this model and input (--overwrite redoes it)")
            report.skipped.append({"case": case.case_id, "label": str(label_path),
                                   "segmentation": str(seg_path)})
            return
        try:
            empty = _write_case(case, segmenter, out, options, progress, made_by)
        except (NotImplementedError, RuntimeError) as exc:  # e.g. an operator MPS lacks
            clear = unsupported_on_device(exc, segmenter.device)
            if clear is None:
                raise
            raise clear from exc
    except (SARError, MemoryError, torch.OutOfMemoryError) as exc:
        error, file = _failure_text(case, exc, segmenter)
        log.warning("%s failed: %s", case.case_id, error)
        reporter.log(f"failed: {case.case_id}: {error}", level="error", kind=type(exc).__name__,
                     file=file, case=case.case_id)
        report.failed.append({"case": case.case_id, "error": error, "file": file})
        return
    seconds = round(time.monotonic() - start, 1)
    reporter.log(f"{case.case_id}: {label_path.name}, {seg_path.name} ({seconds} s)")
    extra = {kind: str(path) for kind, path in confidence_paths(out, case.case_id, options).items()
             } if options.probabilities else {}
    if empty:
        reporter.log(f"warning: {empty_warning(case, segmenter.model)}")
        report.empty.append(case.case_id)
    report.outputs.append({"case": case.case_id, "label": str(label_path),
                           "segmentation": str(seg_path), "seconds": seconds, **extra})


def _already_done(label_path: Path, seg_path: Path, made_by: dict[str, Any]) -> bool:
    """True when both outputs exist and their record names this model and input;
    raises when an output exists that came from something else (or has no record)."""
    existing = [p for p in (label_path, seg_path) if p.exists()]
    if not existing:
        return False
    record = record_path(label_path)
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    outputs = recorded.pop("outputs_sha256", None) if isinstance(recorded, dict) else None
    if isinstance(recorded, dict):  # the model's, so covered by its checksum
        recorded.pop("classes", None)
    if recorded == made_by and len(existing) == 2:
        if outputs == {p.name: sha256_file(p) for p in (label_path, seg_path)}:
            return True
        raise DataError("output already exists and changed since it was written (its "
                        "checksum differs from the record)", existing[0],
                        "pass --overwrite to replace it, or choose another --out")
    if len(existing) == 1 and recorded in (None, made_by):  # a run stopped between the files
        log.info("%s exists alone (an earlier run was stopped); redoing the case",
                 existing[0].name)
        return False
    why = ("came from another model or input" if recorded is not None
           else f"has no record of its model and input ({record.name})")
    raise DataError(f"output already exists and {why}", existing[0],
                    "pass --overwrite to replace it, or choose another --out")


def _write_case(case: InferenceCase, segmenter: Segmenter, out: Path, options: SegmentOptions,
                progress: Progress, made_by: dict[str, Any]) -> bool:
    """Segments and writes one case; True when the label map has no foreground."""
    label_path, seg_path = output_paths(out, case.case_id, options.label_format)
    confidence = confidence_paths(out, case.case_id, options) if options.probabilities else {}
    images = [read_image(source) for source in case.sources]
    try:
        check_storable(images[0], label_path)  # before the work, not after it
    except DataError as exc:
        raise DataError(exc.problem, case.source, exc.hint) from exc
    try:
        if confidence:
            result = segment_with_confidence(segmenter, images, progress)
            labels = result.labels
        else:
            labels = segmenter.segment(images, progress)
    except DataError as exc:  # the pure steps know no file names: add the case's
        raise DataError(exc.problem, exc.path or case.source, exc.hint) from exc
    record_path(label_path).unlink(missing_ok=True)
    for kind, path in confidence.items():  # before the label map: a case's label map
        write_image(getattr(result, kind), path)  # means its maps are there too
    write_image(labels, label_path)
    try:
        write_seg_nrrd(seg_path, labels, segmenter.model.classes)
    except BaseException:
        label_path.unlink(missing_ok=True)
        raise
    write_json_atomic(record_path(label_path), {
        **made_by, "classes": recorded_classes(segmenter.model),
        "outputs_sha256": {p.name: sha256_file(p) for p in (label_path, seg_path)}})
    return not bool(sitk.GetArrayViewFromImage(labels).any())


def empty_warning(case: InferenceCase, model: Any) -> str:
    """Why a label map can come out all empty, said where it happens."""
    wanted = "/".join(model.sequences) or "its training scans"
    modalities = "/".join(model.modalities) or "its training modality"
    return (f"{case.case_id}: the segmentation is empty (the model marked no voxel as a "
            f"class). Either the scan has no tumor, or the model cannot see one: it was "
            f"trained too briefly (a short fine-tuning from a short pre-training keeps a "
            f"restoration head that marks nothing; fine-tune longer or with --fresh-head), "
            f"or the input is not the {wanted} {modalities} scan it was trained on")


def memory_advice(segmenter: Segmenter) -> str:
    """What to try after running out of memory, leaving out what is already in use."""
    options = segmenter.options
    tips = [tip for tip, in_use in (
        ("--fast", options.fast),
        ("a smaller --window", False),
        ("--batch-size 1", options.batch_size == 1),
        ("--device cpu", segmenter.device.type == "cpu"),
    ) if not in_use]
    return "try " + ", ".join(tips[:-1]) + " or " + tips[-1] if len(tips) > 1 \
        else "try " + tips[0]


def confidence_paths(out_dir: Path, case_id: str, options: SegmentOptions
                     ) -> dict[str, Path]:
    """``--probabilities``: ``<case>_probability.nii.gz`` (+ ``_disagreement`` with TTA)."""
    safe = case_id.replace("/", "_").replace("\\", "_")
    kinds = ("probability", "disagreement") if options.tta else ("probability",)
    return {kind: Path(out_dir) / f"{safe}_{kind}.nii.gz" for kind in kinds}


def _failure_text(case: InferenceCase, exc: BaseException, segmenter: Segmenter
                  ) -> tuple[str, str | None]:
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        where = segmenter.device.type
        return (f"{case.source}: out of memory on {where} ({memory_advice(segmenter)})",
                str(case.source))
    return str(exc), getattr(exc, "path", None) or str(case.source)
