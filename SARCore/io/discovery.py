"""Find the cases behind command-line inputs: files, folders, DICOM series, MSD, BraTS.

Every input path becomes zero or more :class:`CaseSpec` (one image, maybe a label):

* an image file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``): one case;
* a folder with ``dataset.json``: the MSD layout, one case per ``"training"`` entry;
* a BraTS case folder (files named by sequence, each sequence once: ``*flair*``/``*t2f*``/
  ``*fla*``, ``*t1c*``/``*t1ce*``/``*t1gd*``, ``*t1n*``/``*_t1.*``, ``*t2w*``/``*_t2.*``, a label
  ``*seg*``/``*OTMultiClass*``/``*label*``): one case for the chosen sequence, or one per
  sequence for several (``"flair,t1c"``) or ``"all"`` (as the paper's Table 1 counts
  BraTS), then named ``<folder>_<sequence>``;
  a ``*brainmask*`` file is not a label but the case's brain mask (the ``brats`` z-score's
  region);
* a folder holding a DICOM series: one case per series;
* any other folder: its image files (labels named ``*_label``/``*_seg``/``*_mask`` are
  paired with the image whose name they start with), then its sub-folders, recursively.

A case that cannot be assembled (a file listed in ``dataset.json`` is missing, a BraTS
folder lacks the sequence) carries a ``problem`` instead of raising, so the rest of a
batch is still processed and the problem is reported per case.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import SimpleITK as sitk

from SARCore.config import check_choice
from SARCore.errors import ConfigError, DataError
from SARCore.io.modality import MODALITY_NAMES, modality_code
from SARCore.io.paths import inside_folder, printable

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
SEQUENCE_TOKENS = {
    "flair": {"flair", "t2f", "fla", "t2flair"},
    "t1c": {"t1c", "t1ce", "t1gd", "t1post"},
    "t1": {"t1", "t1n", "t1w"},
    "t2": {"t2", "t2w"},
}
SEQUENCES = (*SEQUENCE_TOKENS, "all")
LABEL_TOKENS = {"seg", "segmentation", "label", "labels", "labelmap", "mask", "otmulticlass",
                "gt", "truth"}
SKIP_NAMES = ("brainmask", "brain_mask")  # skull-stripping masks, not labels
_IMAGE_NAME_TOKENS = {"image", "img"}
MAX_DEPTH = 3


@dataclass(frozen=True)
class CaseSpec:
    """One case to preprocess: an image (a file, or the slices of a DICOM series)."""

    case_id: str
    images: tuple[Path, ...]
    label: Path | None = None
    modality: str | None = None  # "CT" | "MRI"; None lets the preset decide
    problem: str | None = None  # why it cannot be processed (reported, not raised)
    brain_mask: Path | None = None  # a BraTS folder's skull-stripping mask, if it has one
    layout: str = ""  # "brats", "msd" or "msd-pancreas": picks fine-tuning's preset

    @property
    def source(self) -> Path:
        """The path to name in messages: the file, or the DICOM series folder."""
        return self.images[0] if len(self.images) == 1 else self.images[0].parent


def discover_cases(inputs: Sequence[str | Path], sequence: str = "flair",
                   modality: str | None = None, allow_outside: bool = False) -> list[CaseSpec]:
    """All cases behind ``inputs`` in a stable order, with unique ``case_id`` values.

    ``allow_outside`` lets a ``dataset.json`` name files outside its own folder (absolute
    paths, ``..``); by default they are refused, so a dataset cannot reach other files.
    """
    wanted = sequence_list(sequence)
    forced = MODALITY_NAMES[modality_code(modality)] if modality else None
    cases: list[CaseSpec] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if not path.exists():
            raise DataError("input not found", path)
        found = [_image_case(path)] if path.is_file() else _folder_cases(path, wanted, 0,
                                                                         allow_outside)
        if not found:
            raise DataError("no images found", path,
                            f"expected files ending in {', '.join(IMAGE_SUFFIXES)}, "
                            "a DICOM series, an MSD dataset.json or BraTS case folders")
        cases.extend(found)
    if forced:
        cases = [replace(c, modality=forced) for c in cases]
    return _unique_ids(cases)


def sequence_list(sequence: str) -> tuple[str, ...]:
    """``"flair"`` -> ``("flair",)``, ``"flair,t1c"`` -> both, ``"all"`` -> ``()`` (every
    sequence a folder has); BraTS 2023 names (``t2f``) map to the engine's (``flair``), as
    ``--sequence`` does. An unknown name, a repeat or ``all`` in a list is a ConfigError."""
    parts = [p.strip().lower() for p in str(sequence).split(",") if p.strip()]
    if parts == ["all"]:
        return ()
    if not parts or "all" in parts:
        raise ConfigError(f"sequence must be one name, several joined by commas, or all; "
                          f"not {sequence!r}")
    aliases = {token: name for name, tokens in SEQUENCE_TOKENS.items() for token in tokens}
    for part in parts:
        check_choice("sequence", part, (*SEQUENCES[:-1], *sorted(set(aliases) - set(SEQUENCES))))
    parts = [aliases.get(part, part) for part in parts]
    if len(set(parts)) != len(parts):
        raise ConfigError(f"sequence {sequence!r} names a sequence twice")
    return tuple(parts)


def name_tokens(path: Path) -> list[str]:
    """Lower-case words of a file name without its image suffix (split on ``_ - .``)."""
    return [t for t in re.split(r"[^a-z0-9]+", _strip_suffix(path.name).lower()) if t]


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES) \
        and not path.name.startswith(".")


def _strip_suffix(name: str) -> str:
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _image_case(path: Path, label: Path | None = None, modality: str | None = None) -> CaseSpec:
    case = CaseSpec(_strip_suffix(printable(path.name)), (path,), label, modality)
    bad = [p for p in (path, label) if p is not None and not _is_utf8(p)]
    if bad:
        return replace(case, problem=f"{printable(bad[0])}: file name is not valid UTF-8 "
                                     "(rename it using plain characters)")
    return case


def _is_utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _folder_cases(folder: Path, sequence: tuple[str, ...], depth: int,
                  allow_outside: bool = False) -> list[CaseSpec]:
    if not _is_utf8(folder):  # ITK aborts the process on such a name: one failed case
        return [CaseSpec(printable(folder.name), (folder,), problem=f"{printable(folder)}: "
                         "folder name is not valid UTF-8 (rename it using plain characters)")]
    if (folder / "dataset.json").is_file():
        return _msd_cases(folder, allow_outside)
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    images = [p for p in entries if is_image_file(p)]
    if _is_brats_case(images):
        return _brats_cases(folder, images, sequence)
    cases = _paired_file_cases(images)
    if not images and any(_looks_like_dicom(p) for p in entries if p.is_file()):
        cases.extend(_dicom_cases(folder))
    if depth < MAX_DEPTH:
        for sub in (p for p in entries if p.is_dir()):
            cases.extend(_folder_cases(sub, sequence, depth + 1, allow_outside))
    return cases


def _sequence_of(path: Path) -> str | None:
    tokens = set(name_tokens(path))
    if _is_skipped(path) or tokens & LABEL_TOKENS:
        return None
    for name, words in SEQUENCE_TOKENS.items():
        if tokens & words:
            return name
    return None


def _is_brats_case(images: list[Path]) -> bool:
    """Files named by sequence, each sequence once (``sub01_t1``, ``sub02_t1``: two scans)."""
    sequences = [seq for seq in map(_sequence_of, images) if seq]
    return bool(sequences) and len(sequences) == len(set(sequences))


def _is_skipped(path: Path) -> bool:
    return any(word in path.name.lower() for word in SKIP_NAMES)


def _is_label_name(path: Path) -> bool:
    return bool(set(name_tokens(path)) & LABEL_TOKENS) and not _is_skipped(path)


def _brats_cases(folder: Path, images: list[Path], sequence: tuple[str, ...]
                 ) -> list[CaseSpec]:
    labels = [p for p in images if _is_label_name(p)]
    if len(labels) > 1:
        log.warning("%s: several label files, using %s", folder, labels[0].name)
    label = labels[0] if labels else None
    masks = [p for p in images if _is_skipped(p)]
    brain_mask = masks[0] if masks else None
    by_sequence: dict[str, Path] = {}
    for path in images:
        seq = _sequence_of(path)
        if seq and seq not in by_sequence:
            by_sequence[seq] = path
    wanted = sequence or tuple(by_sequence)  # () = all
    cases = []
    for seq in wanted:
        case_id = folder.name if len(sequence) == 1 else f"{folder.name}_{seq}"
        if seq in by_sequence:
            cases.append(CaseSpec(case_id, (by_sequence[seq],), label, "MRI",
                                  brain_mask=brain_mask, layout="brats"))
        else:
            found = ", ".join(sorted(by_sequence)) or "none"
            cases.append(CaseSpec(case_id, (folder,), None, "MRI",
                                  problem=f"{folder}: no {seq} sequence in this BraTS case "
                                          f"folder (found: {found}; choose with --sequence)"))
    return cases


def _paired_file_cases(images: list[Path]) -> list[CaseSpec]:
    """Images of a plain folder, each with the label file named after it (if any)."""
    plain = [p for p in images if not _is_label_name(p) and not _is_skipped(p)]
    keys = {p: [t for t in name_tokens(p) if t not in _IMAGE_NAME_TOKENS] for p in plain}
    labels: dict[Path, Path] = {}
    for label in (p for p in images if _is_label_name(p)):
        key = [t for t in name_tokens(label) if t not in LABEL_TOKENS]
        matches = [p for p, k in keys.items() if k and key[: len(k)] == k]
        if not matches:
            log.info("%s: label file matches no image in its folder; skipped", label)
            continue
        image = max(matches, key=lambda p: len(keys[p]))  # the most specific name wins
        labels.setdefault(image, label)
    return [_image_case(p, labels.get(p)) for p in plain]


def _looks_like_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".ima", ".dicom"):
        return True
    with open(path, "rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def _dicom_cases(folder: Path) -> list[CaseSpec]:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    cases = []
    for index, series_id in enumerate(series):
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)
        case_id = folder.name if len(series) == 1 else f"{folder.name}_{index + 1}"
        cases.append(CaseSpec(case_id, tuple(Path(f) for f in files)))
    return cases


def _msd_cases(root: Path, allow_outside: bool = False) -> list[CaseSpec]:
    """Cases of a Medical Segmentation Decathlon folder (its ``"training"`` list)."""
    spec_path = root / "dataset.json"
    expected = 'expected JSON with "training": [{"image": ..., "label": ...}]'
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"not a readable MSD dataset description ({exc})", spec_path,
                        expected) from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("training"), list):
        found = type(spec.get("training")).__name__ if isinstance(spec, dict) \
            else type(spec).__name__
        raise DataError(f'"training" must be a list of entries (found {found})', spec_path,
                        expected)
    entries = spec["training"]
    modality = _msd_modality(spec.get("modality"))
    layout = "msd-pancreas" if "pancreas" in str(spec.get("name", "")).lower() else "msd"
    cases = []
    for entry in entries:
        if isinstance(entry, str):
            entry = {"image": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise DataError(f"bad training entry {entry!r}", spec_path,
                            'each entry needs an "image" path')
        if entry.get("label") is not None and not isinstance(entry["label"], str):
            raise DataError(f"bad training entry {entry!r}: \"label\" must be a path", spec_path)
        image = inside_folder(root, entry["image"], spec_path, allow_outside, _OUTSIDE_HINT)
        label = inside_folder(root, entry["label"], spec_path, allow_outside, _OUTSIDE_HINT) \
            if entry.get("label") else None
        case = replace(_image_case(image, label, modality), layout=layout)
        missing = [p for p in (image, label) if p is not None and not p.is_file()]
        if missing:
            case = replace(case, problem=f"{missing[0]}: file not found (listed in {spec_path})")
        cases.append(case)
    return cases


_OUTSIDE_HINT = ("keep images inside the folder of dataset.json, or allow outside paths "
                 "explicitly (--allow-outside-paths)")


def _msd_modality(value: object) -> str | None:
    """MSD ``"modality": {"0": "CT"}`` -> ``"CT"``; any MR sequence name -> ``"MRI"``."""
    if not isinstance(value, dict) or not value:
        return None
    first = str(value.get("0", next(iter(value.values())))).upper()
    return "CT" if first == "CT" else "MRI"


def _unique_ids(cases: list[CaseSpec]) -> list[CaseSpec]:
    seen: dict[str, int] = {}
    unique = []
    for case in cases:
        count = seen.get(case.case_id, 0) + 1
        seen[case.case_id] = count
        if count > 1:
            new_id = f"{case.case_id}-{count}"
            log.warning("case id %s used twice; the second is %s", case.case_id, new_id)
            case = replace(case, case_id=new_id)
        unique.append(case)
    return unique
