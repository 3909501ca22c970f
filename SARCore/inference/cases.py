"""Command-line inputs -> the cases a model can segment, one image source per input channel.

Discovery is :func:`SARCore.io.discovery.discover_cases`; this module only picks the
model's sequences. A model whose header lists several ``sequences`` (e.g. flair + t1c)
gets, per case folder, one file per sequence (discovery is run once per sequence and the
results joined by case id). What cannot fit the model is not raised but carried as the
case's ``problem``, so a batch goes on with the other cases:

* a case lacking one of the sequences, or one file given where several are needed;
* a model with several input channels whose header names no sequences;
* a case whose modality is known (BraTS folder, MSD dataset.json) and is not one of the
  header's ``modalities``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from SARCore.errors import DataError
from SARCore.inference.model import SegmentationModel
from SARCore.io.discovery import CaseSpec, discover_cases

# a file, or the slice files of a DICOM series (Union: a run-time "X | Y" breaks Python 3.9)
ImageSource = Union[Path, tuple[Path, ...]]


@dataclass(frozen=True)
class InferenceCase:
    """One scan to segment: one image source per model input channel (in header order)."""

    case_id: str
    sources: tuple[ImageSource, ...]
    modality: str | None = None
    problem: str | None = None

    @property
    def source(self) -> Path:
        """The path to name in messages."""
        first = self.sources[0] if self.sources else Path(self.case_id)
        return first if isinstance(first, Path) else first[0].parent


def gather_cases(inputs: Sequence[str | Path], model: SegmentationModel,
                 allow_outside: bool = False) -> list[InferenceCase]:
    """Cases behind ``inputs`` matched to ``model``'s channels; problems are kept per case
    (``allow_outside``: a ``dataset.json`` may name files outside its folder)."""
    cases: list[InferenceCase] = []
    for raw in inputs:
        try:
            cases.extend(_cases_of(raw, model, allow_outside))
        except DataError as exc:
            cases.append(InferenceCase(Path(raw).name or str(raw), (), problem=str(exc)))
    return [_check_modality(case, model) for case in cases]


def _cases_of(raw: str | Path, model: SegmentationModel,
              allow_outside: bool = False) -> list[InferenceCase]:
    sequences = model.sequences
    if model.in_channels > 1 and not sequences:
        raise DataError(f"model expects {model.in_channels} input channels but its header "
                        "names no 'sequences' to choose the files", model.path)
    if len(sequences) <= 1:
        found = discover_cases([raw], sequence=sequences[0] if sequences else "flair",
                               allow_outside=allow_outside)
        return [InferenceCase(c.case_id, (_source(c),), c.modality, c.problem) for c in found]
    return multi_sequence_cases(raw, sequences, allow_outside)


def multi_sequence_cases(raw: str | Path, sequences: Sequence[str],
                         allow_outside: bool = False) -> list[InferenceCase]:
    """Cases behind ``raw`` with one image per sequence (in ``sequences``' order), found
    by running discovery once per sequence and joining by case id; the Slicer batch
    script pairs case folders with a multi-sequence model through this too."""
    per_sequence = {seq: discover_cases([raw], sequence=seq, allow_outside=allow_outside)
                    for seq in sequences}
    first = per_sequence[sequences[0]]
    return [_joined(case.case_id, per_sequence, sequences) for case in first]


def _joined(case_id: str, per_sequence: dict[str, list[CaseSpec]],
            sequences: Sequence[str]) -> InferenceCase:
    specs = []
    for seq in sequences:
        match = next((c for c in per_sequence[seq] if c.case_id == case_id), None)
        if match is None or match.problem:
            reason = match.problem if match else f"{case_id}: no {seq} image found"
            return InferenceCase(case_id, (), problem=reason)
        specs.append(match)
    sources = tuple(_source(spec) for spec in specs)
    if len(set(sources)) < len(sources):
        needed = ", ".join(sequences)
        return InferenceCase(case_id, sources, specs[0].modality, problem=(
            f"{specs[0].source}: the model expects {len(sequences)} sequences ({needed}) but "
            "this input is a single image; give the case folder holding one file per sequence"))
    return InferenceCase(case_id, sources, specs[0].modality)


def _source(case: CaseSpec) -> ImageSource:
    return case.images[0] if len(case.images) == 1 else case.images


def _check_modality(case: InferenceCase, model: SegmentationModel) -> InferenceCase:
    if case.problem or not model.modalities or case.modality is None:
        return case
    if case.modality.upper() not in model.modalities:
        return InferenceCase(case.case_id, case.sources, case.modality, problem=(
            f"{case.source}: the scan is {case.modality} but the model was trained on "
            f"{', '.join(model.modalities)} ({model.path.name}); use a model for "
            f"{case.modality}"))
    return case


#: Header fields that say what a scan is: DICOM modality and series description (NRRD
#: and NIfTI headers carry the same keys when a converter kept them).
_MODALITY_KEY, _DESCRIPTION_KEYS = "0008|0060", ("0008|103e", "0008|1030", "descrip")


def input_warnings(case: InferenceCase, model: SegmentationModel) -> list[str]:
    """Warnings for an input that is not what the model was trained on: another sequence
    (by file or folder name, or the header's series description) or another modality
    (the DICOM/NRRD header's modality). Nothing is refused: names can be wrong."""
    if case.problem or not case.sources:
        return []
    warnings = []
    for wanted, source in zip(model.sequences or ("",) * len(case.sources), case.sources):
        first = source if isinstance(source, Path) else source[0]
        fields = _header_fields(first)
        said = _sequence_said(first, fields)
        if wanted and said and said != wanted:
            warnings.append(f"{first}: this looks like a {said} scan but the model "
                            f"({model.path.name}) was trained on {wanted}; give the {wanted} "
                            "scan (in BraTS 2023 names FLAIR is t2f)")
        modality = _modality_said(fields)
        if model.modalities and modality and modality not in model.modalities:
            warnings.append(f"{first}: the file's header says {modality} but the model "
                            f"({model.path.name}) was trained on "
                            f"{', '.join(model.modalities)}")
    return warnings


def _header_fields(path: Path) -> dict[str, str]:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return {}  # an unreadable file fails later with its own message
    return {key: reader.GetMetaData(key) for key in reader.GetMetaDataKeys()}


def _sequence_said(path: Path, fields: dict[str, str]) -> str | None:
    from SARCore.io.discovery import SEQUENCE_TOKENS, name_tokens

    words = [name_tokens(path), name_tokens(Path(path.parent.name + ".nii"))]
    words += [name_tokens(Path(fields[k] + ".nii")) for k in _DESCRIPTION_KEYS if k in fields]
    for tokens in words:
        found = {name for name, names in SEQUENCE_TOKENS.items() if set(tokens) & names}
        if len(found) == 1:
            return found.pop()
    return None


def _modality_said(fields: dict[str, str]) -> str | None:
    value = fields.get(_MODALITY_KEY, fields.get("modality", "")).strip().upper()
    return {"CT": "CT", "MR": "MRI", "MRI": "MRI"}.get(value)
