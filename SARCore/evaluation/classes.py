"""Where ``evaluate`` takes class names from when ``--labels`` is not given.

A column called ``1`` says nothing; the model that made the predictions knows the class
is ``tumor`` and which truth values it stands for (``source_labels``, e.g. ``>0``). In
order of preference:

1. ``--model``: the model file's header (classes, label values, truth rules);
2. the predictions' provenance records (``<case>.sar.json``, written by ``segment`` with
   the model's classes);
3. the predictions' ``<case>.seg.nrrd`` segment names and label values: these carry no
   truth rule, so a truth value is read as the class with the same label value.

With none of them the columns stay the label values found in the truth. The caller
reports which source was used, so a reader knows where the names came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from SARCore.errors import DataError, ModelFileError
from SARCore.evaluation.metrics import LabelGroup
from SARCore.finetune.labels import PALETTE, ClassSpec


def named_groups(predictions: Iterable[Path], model: str | Path | None = None
                 ) -> tuple[list[LabelGroup], str] | None:
    """``(groups, source)`` for the first source that names classes, else ``None``."""
    if model is not None:
        return _groups(_header_classes(Path(model)), True), f"the model header of {model}"
    files = sorted(predictions)
    for reader, has_rules, what in ((_record_classes, True, "provenance record"),
                                    (_seg_nrrd_classes, False, "segment names of")):
        found = {p: entries for p in files if (entries := reader(p))}
        if found:
            path, entries = next(iter(found.items()))
            other = next((p for p, e in found.items() if e != entries), None)
            if other is not None:
                raise DataError(f"names other classes than {_source_name(reader, path)} "
                                f"({_names(found[other])} against {_names(entries)}): the "
                                "predictions came from different models",
                                Path(_source_name(reader, other)),
                                "score them apart, or give --labels")
            return _groups(entries, has_rules), f"the {what} {_source_name(reader, path)}"
    return None


def _names(entries: Sequence[dict[str, Any]]) -> str:
    return ", ".join(f"{e['name']}={e['label']}" for e in entries)


def _groups(entries: Sequence[dict[str, Any]], has_rules: bool) -> list[LabelGroup]:
    """One group per class (prediction by label value, truth by rule), plus ``whole``."""
    classes = []
    for index, entry in enumerate(entries):
        label = int(entry["label"])
        rule = str(entry.get("source_labels") or label) if has_rules else str(label)
        classes.append(ClassSpec(str(entry["name"]), label, rule.replace(" ", ""),
                                 PALETTE[index % len(PALETTE)]))
    groups = [LabelGroup(c.name, (), outputs=(c.label,), classes=tuple(classes))
              for c in classes]
    if len(classes) > 1 and "whole" not in {c.name for c in classes}:
        groups.append(LabelGroup("whole", (), outputs=tuple(c.label for c in classes),
                                 classes=tuple(classes)))
    return groups


def _header_classes(model: Path) -> list[dict[str, Any]]:
    from SARCore.models.modelfile import load_model_file

    header, _ = load_model_file(model, task="segmentation")
    entries = header.get("classes")
    if not isinstance(entries, list) or not entries or not all(
            isinstance(e, dict) and "name" in e for e in entries):
        raise ModelFileError("header names no classes", model, "give --labels instead")
    return [{"name": e["name"], "label": e.get("label", i),
             "source_labels": e.get("source_labels")} for i, e in enumerate(entries, start=1)]


def _record_path(prediction: Path) -> Path:
    stem = prediction.name.split("_label.")[0]
    return prediction.with_name(f"{stem}.sar.json")


def _seg_path(prediction: Path) -> Path:
    stem = prediction.name.split("_label.")[0]
    return prediction.with_name(f"{stem}.seg.nrrd")


def _source_name(reader: Any, prediction: Path) -> str:
    path = _record_path(prediction) if reader is _record_classes else _seg_path(prediction)
    return str(path)


def _record_classes(prediction: Path) -> list[dict[str, Any]] | None:
    record = _record_path(prediction)
    if not record.is_file():
        return None
    try:
        entries = json.loads(record.read_text(encoding="utf-8")).get("classes")
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"provenance record is not readable JSON ({exc})", record,
                        "give --labels, or delete the record") from exc
    if not entries:
        return None  # written before records carried classes
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and "name" in e and "label" in e for e in entries):
        raise DataError("provenance record's 'classes' must be a list of {name, label}",
                        record, "give --labels, or delete the record")
    return [{"name": e["name"], "label": int(e["label"]),
             "source_labels": e.get("source_labels")} for e in entries]


def _seg_nrrd_classes(prediction: Path) -> list[dict[str, Any]] | None:
    import nrrd

    seg = _seg_path(prediction)
    if not seg.is_file():
        return None
    try:
        header = nrrd.read_header(str(seg))
    except (OSError, nrrd.NRRDError) as exc:
        raise DataError(f"segmentation header is not readable ({exc})", seg) from exc
    entries, index = [], 0
    while f"Segment{index}_Name" in header:
        try:
            label = int(header.get(f"Segment{index}_LabelValue", index + 1))
        except ValueError as exc:
            raise DataError(f"Segment{index}_LabelValue is not a number", seg) from exc
        entries.append({"name": header[f"Segment{index}_Name"], "label": label})
        index += 1
    return entries or None
