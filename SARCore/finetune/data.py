"""Labeled cases for fine-tuning: find them, preprocess them once, keep them in memory.

``--data`` is one of

* an MSD folder or its ``dataset.json`` (``imagesTr``/``labelsTr``),
* a folder of BraTS case folders (one image per chosen sequence + a label file),
* a CSV with columns ``image,label`` (optionally ``id``, ``modality``, or one image
  column per sequence named like the sequence, e.g. ``flair,t1c,label``); paths are
  relative to the CSV's folder and stay inside it, as a ``dataset.json``'s do (absolute
  paths and ``..`` need ``allow_outside_paths`` / ``--allow-outside-paths``).

Folders go through :func:`SARCore.io.discovery.discover_cases`; several sequences become
the input channels of one case. Preprocessed volumes are cached as ``.nii.gz`` under a
folder named by a fingerprint of the preset, the class mapping and the sequences, so a
second trial, a resumed run or another initialisation of the same experiment reads them
instead of resampling again; in memory the images are float16. Each cached case has a
record, ``<case>.sha256.json``, written after its files: a cached case is used only while
every file still has its recorded checksum (streamed, cheap next to resampling), so a
truncated or replaced file is rebuilt instead of trained on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from SARCore.atomic import write_json_atomic
from SARCore.errors import DataError
from SARCore.finetune.labels import ClassSpec, check_rule_matches, map_labels
from SARCore.finetune.patches import Volume
from SARCore.io.arrays import image_to_array
from SARCore.io.checksum import sha256_file
from SARCore.io.discovery import CaseSpec, discover_cases
from SARCore.io.paths import inside_folder
from SARCore.io.readers import read_image, read_label
from SARCore.io.writers import write_image
from SARCore.preprocess.image import preprocess_image
from SARCore.preprocess.pipeline import label_values
from SARCore.preprocess.presets import Preset
from SARCore.progress import NullReporter, Reporter

log = logging.getLogger(__name__)
_CSV_OUTSIDE_HINT = ("write paths relative to the CSV's folder, or allow outside paths "
                     "explicitly (--allow-outside-paths)")

#: Images are held in memory as float16 (patches are float32): half the RAM for a whole
#: training set, and the normalised intensities (|x| < ~10) keep 3 significant digits.
MEMORY_DTYPE = np.float16


@dataclass(frozen=True)
class LabeledCase:
    """One labeled case: an image source per input channel (sequence), and the label."""

    case_id: str
    channels: tuple[tuple[Path, ...], ...]
    label: Path
    modality: str | None = None
    brain_mask: Path | None = None  # the folder's brain mask (``brats`` z-score region)
    layout: str = ""  # "brats", "msd", "msd-pancreas" or "" (CSV): see finetune.setup

    def to_dict(self) -> dict[str, object]:
        return {"case_id": self.case_id, "images": [str(c[0] if len(c) == 1 else c[0].parent)
                                                    for c in self.channels],
                "label": str(self.label), "modality": self.modality}


def find_labeled_cases(data: str | Path, sequences: Sequence[str] = (),
                       modality: str | None = None, allow_outside: bool = False,
                       ) -> list[LabeledCase]:
    """Every labeled case behind ``data`` (cases without a label are skipped and logged);
    ``allow_outside``: a ``dataset.json`` or CSV may name files outside its folder."""
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError("labeled data not found", path,
                        "give an MSD dataset.json, a folder of BraTS cases or a CSV")
    if path.is_file() and path.suffix.lower() == ".csv":
        cases = _csv_cases(path, tuple(sequences), modality, allow_outside)
    else:
        root = path.parent if path.name == "dataset.json" else path
        cases = _discovered_cases(root, tuple(sequences), modality, allow_outside)
    if not cases:
        raise DataError("no labeled cases found", path,
                        "each case needs a label file (BraTS *seg*/OTMultiClass, MSD labelsTr)")
    return cases


def _discovered_cases(root: Path, sequences: tuple[str, ...], modality: str | None,
                      allow_outside: bool = False) -> list[LabeledCase]:
    per_sequence: list[dict[str, CaseSpec]] = []
    for sequence in sequences or ("flair",):  # discovery's default; only BraTS looks at it
        specs = discover_cases([root], sequence=sequence, modality=modality or None,
                               allow_outside=allow_outside)
        per_sequence.append({s.case_id: s for s in specs})
    cases = []
    for case_id, first in per_sequence[0].items():
        specs = [found.get(case_id) for found in per_sequence]
        problem = next((s.problem for s in specs if s is not None and s.problem), None)
        if problem or any(s is None for s in specs):
            log.warning("skipping case %s: %s", case_id, problem or "a sequence is missing")
            continue
        if first.label is None:
            log.info("skipping case %s: no label file", case_id)
            continue
        cases.append(LabeledCase(case_id, tuple(s.images for s in specs if s), first.label,
                                 first.modality, first.brain_mask, first.layout))
    return cases


def _csv_cases(path: Path, sequences: tuple[str, ...], modality: str | None,
               allow_outside: bool = False) -> list[LabeledCase]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV ({exc})", path) from exc
    columns = [c.strip().lower() for c in (rows[0].keys() if rows else [])]
    image_columns = list(sequences) if sequences else ["image"]
    missing = [c for c in (*image_columns, "label") if c not in columns]
    if missing:
        raise DataError(f"CSV lacks column(s) {', '.join(missing)} (has {', '.join(columns)})",
                        path, "write a header line like 'image,label' or 'flair,label'")
    cases = []
    for number, raw in enumerate(rows, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        names = [*image_columns, "label"]
        empty = [c for c in names if not row.get(c)]
        if empty:
            raise DataError(f"line {number}: column {empty[0]!r} is empty", path)
        files = [inside_folder(path.parent, row[c], path, allow_outside, _CSV_OUTSIDE_HINT)
                 for c in names]
        absent = [f for f in files if not f.exists()]
        if absent:
            raise DataError(f"line {number}: file not found: {absent[0]}", path)
        case_id = row.get("id") or files[0].name.split(".")[0]
        cases.append(LabeledCase(case_id, tuple((f,) for f in files[:-1]), files[-1],
                                 row.get("modality") or modality or None))
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        raise DataError("case ids repeat in the CSV", path, "add a unique 'id' column")
    return cases


def cache_folder(cache_root: str | Path, preset: Preset, classes: Sequence[ClassSpec],
                 sequences: Sequence[str]) -> Path:
    """``<cache_root>/<fingerprint>``: one folder per preprocessing + mapping."""
    key = {"preset": preset.to_dict(), "classes": [c.to_header() for c in classes],
           "sequences": list(sequences),
           "zscore_region": "brain mask, else not the border constant"}  # older caches differ
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(cache_root) / f"{preset.name}-{digest}"
    if not (folder / "cache.json").is_file():
        write_json_atomic(folder / "cache.json", key)
    return folder


def _cached_files(folder: Path, case: LabeledCase) -> list[Path]:
    channels = [folder / f"{case.case_id}_c{k}.nii.gz" for k in range(len(case.channels))]
    return [*channels, folder / f"{case.case_id}_label.nii.gz"]


def _record_path(folder: Path, case: LabeledCase) -> Path:
    return folder / f"{case.case_id}.sha256.json"


def _record_checksums(folder: Path, case: LabeledCase, files: list[Path]) -> None:
    """Write the case's record last: its presence marks a complete, checked case."""
    write_json_atomic(_record_path(folder, case), {f.name: sha256_file(f) for f in files})


def _cache_problem(folder: Path, case: LabeledCase, files: list[Path]) -> str | None:
    """Why the cached case cannot be used (``None``: every file has its recorded sha256;
    a case written by an older version has no record and is rebuilt once)."""
    record = _record_path(folder, case)
    if not record.is_file():
        return f"{record.name} is missing"
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{record.name} is unreadable ({exc})"
    if not isinstance(recorded, dict):
        return f"{record.name} is not a checksum record"
    for path in files:
        if not path.is_file():
            return f"{path.name} is missing"
        if recorded.get(path.name) != sha256_file(path):
            return f"{path.name} changed since it was cached (sha256 differs)"
    return None


def _brain_mask(case: LabeledCase, preset: Preset) -> sitk.Image | None:
    """The case's brain mask when the z-score preset needs one and the folder has it."""
    if case.brain_mask is None or preset.normalization != "zscore_nonzero":
        return None
    return read_label(case.brain_mask)


def _preprocess_case(case: LabeledCase, preset: Preset, classes: Sequence[ClassSpec],
                     files: list[Path], allow_empty: bool = False) -> None:
    label_image = read_label(case.label)
    brain_mask = _brain_mask(case, preset)
    check_rule_matches(case.case_id, case.label, label_values(label_image), classes,
                       allow_empty)
    for index, source in enumerate(case.channels):
        try:
            image, label = preprocess_image(read_image(source), preset,
                                            label=label_image if index == 0 else None,
                                            brain_mask=brain_mask)
        except DataError as exc:
            if exc.path is not None:
                raise
            raise DataError(exc.problem, source[0], exc.hint) from exc
        if index == 0:
            mapped = sitk.GetImageFromArray(map_labels(sitk.GetArrayFromImage(label), classes))
            mapped.CopyInformation(label)
            reference = image
        elif image.GetSize() != reference.GetSize():
            raise DataError(f"sequence {index + 1} has size {image.GetSize()} after "
                            f"preprocessing, the first has {reference.GetSize()}",
                            source[0], "the sequences of a case must be co-registered")
        write_image(image, files[index])
    write_image(mapped, files[-1])


def load_volumes(cases: Sequence[LabeledCase], preset: Preset, classes: Sequence[ClassSpec],
                 folder: str | Path, reporter: Reporter | None = None,
                 allow_empty: bool = False) -> dict[str, Volume]:
    """Preprocessed, label-mapped volumes by case id (preprocessing only what is not cached).

    A case with tumor voxels whose values no class rule takes stops the run (a
    :class:`DataError` naming the case, its values and the rule) unless ``allow_empty``.
    """
    reporter = reporter or NullReporter()
    folder = Path(folder)
    volumes = {}
    reporter.progress(0, len(cases), "", stage="load labeled cases")  # the bar starts at 0 %
    for step, case in enumerate(cases, start=1):
        files = _cached_files(folder, case)
        problem = _cache_problem(folder, case, files)
        if problem is not None:
            if any(f.exists() for f in files):
                log.warning("cached case %s in %s is rebuilt: %s", case.case_id, folder,
                            problem)
            _record_path(folder, case).unlink(missing_ok=True)  # a kill mid-rebuild: redo
            _preprocess_case(case, preset, classes, files, allow_empty)
            _record_checksums(folder, case, files)
        channels = [image_to_array(sitk.ReadImage(str(f)), MEMORY_DTYPE) for f in files[:-1]]
        label = image_to_array(sitk.ReadImage(str(files[-1])), np.uint8)
        volumes[case.case_id] = Volume(case.case_id, np.stack(channels), label)
        reporter.progress(step, len(cases), case.case_id, stage="load labeled cases")
    return volumes
