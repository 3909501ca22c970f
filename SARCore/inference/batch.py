"""Segment a batch of cases into an output folder; one bad case never stops the others.

Per case: ``<out>/<case_id>_label.nii.gz`` (or ``_label.nrrd``) with exactly the input
scan's geometry, and ``<out>/<case_id>.seg.nrrd`` (named, colored segments for 3D
Slicer). Existing outputs are refused (the case fails, naming the file) unless
``overwrite`` is set. Both files are written atomically; if the second cannot be written
the first is removed, so a case has both outputs or neither. A run killed between the two
leaves one: a rerun then redoes that case instead of refusing it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from SARCore.atomic import remove_stale_temporaries
from SARCore.errors import DataError, SARError
from SARCore.inference.cases import InferenceCase, gather_cases
from SARCore.inference.model import load_segmentation_model
from SARCore.inference.seg_nrrd import write_seg_nrrd
from SARCore.inference.segment import Progress, Segmenter, SegmentOptions
from SARCore.inference.uncertainty import segment_with_confidence
from SARCore.io.readers import read_image
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

    @property
    def ok(self) -> bool:
        return not self.failed


def output_paths(out_dir: str | Path, case_id: str, label_format: str = "nii.gz"
                 ) -> tuple[Path, Path]:
    """``(<out>/<case_id>_label.<format>, <out>/<case_id>.seg.nrrd)``."""
    safe = case_id.replace("/", "_").replace("\\", "_")
    out = Path(out_dir)
    return out / f"{safe}_label.{label_format}", out / f"{safe}.seg.nrrd"


def segment_cases(inputs: Sequence[str | Path], model_path: str | Path, out_dir: str | Path,
                  options: SegmentOptions | None = None, reporter: Reporter | None = None
                  ) -> SegmentReport:
    """Segment every case behind ``inputs`` with the model file at ``model_path``."""
    options = options or SegmentOptions()
    reporter = reporter or NullReporter()
    segmenter = Segmenter(load_segmentation_model(model_path), options)
    cases = gather_cases(inputs, segmenter.model)
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
        _run_case(case, segmenter, out, options, progress, report, reporter)
    reporter.progress(total, total, "done", stage="segment")
    return report


def _window_progress(reporter: Reporter, case_id: str, base: int, total: int) -> Progress:
    """Window counts inside one case -> steps of the batch's progress bar."""
    def progress(done: int, count: int) -> None:
        step = base + min(STEPS_PER_CASE - 1, STEPS_PER_CASE * done // max(count, 1))
        reporter.progress(step, total, f"{case_id}: window {done}/{count}", stage="segment")

    return progress


def _run_case(case: InferenceCase, segmenter: Segmenter, out: Path, options: SegmentOptions,
              progress: Progress, report: SegmentReport, reporter: Reporter) -> None:
    start = time.monotonic()
    try:
        try:
            label_path, seg_path = _write_case(case, segmenter, out, options, progress)
        except (NotImplementedError, RuntimeError) as exc:  # e.g. an operator MPS lacks
            clear = unsupported_on_device(exc, segmenter.device)
            if clear is None:
                raise
            raise clear from exc
    except (SARError, MemoryError, torch.OutOfMemoryError) as exc:
        error, file = _failure_text(case, exc, segmenter)
        log.warning("%s failed: %s", case.case_id, error)
        reporter.error(f"failed: {case.case_id}: {error}", kind=type(exc).__name__, file=file,
                       case=case.case_id)
        report.failed.append({"case": case.case_id, "error": error, "file": file})
        return
    seconds = round(time.monotonic() - start, 1)
    reporter.log(f"{case.case_id}: {label_path.name}, {seg_path.name} ({seconds} s)")
    extra = {kind: str(path) for kind, path in confidence_paths(out, case.case_id, options).items()
             } if options.probabilities else {}
    report.outputs.append({"case": case.case_id, "label": str(label_path),
                           "segmentation": str(seg_path), "seconds": seconds, **extra})


def _write_case(case: InferenceCase, segmenter: Segmenter, out: Path, options: SegmentOptions,
                progress: Progress) -> tuple[Path, Path]:
    if case.problem:
        raise DataError(case.problem)
    label_path, seg_path = output_paths(out, case.case_id, options.label_format)
    existing = [path for path in (label_path, seg_path) if path.exists()]
    if not options.overwrite and len(existing) == 2:
        raise DataError("output already exists", label_path,
                        "pass --overwrite to replace it, or choose another --out")
    if len(existing) == 1:  # a run killed between the two files: the case is redone whole
        log.info("%s: only %s exists (an earlier run was stopped); redoing the case",
                 case.case_id, existing[0].name)
    confidence = confidence_paths(out, case.case_id, options) if options.probabilities else {}
    if not options.overwrite and len(existing) == 2:
        for path in confidence.values():
            if path.exists():
                raise DataError("output already exists", path,
                                "pass --overwrite to replace it, or choose another --out")
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
    for kind, path in confidence.items():  # before the label map: a case's label map
        write_image(getattr(result, kind), path)  # means its maps are there too
    write_image(labels, label_path)
    try:
        write_seg_nrrd(seg_path, labels, segmenter.model.classes)
    except BaseException:
        label_path.unlink(missing_ok=True)
        raise
    return label_path, seg_path


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
