"""Output classes of a segmentation model and how a dataset's label values map to them.

A mapping names each output class and the label values that belong to it::

    "tumor:>0"                      whole tumor = every non-zero label (BraTS task 1)
    "pancreas:1,tumor:2"            MSD pancreas: two foreground classes (task 2)
    "core:1|3|4"  "edema:2"  "x:1-3"  "y:>=2"

or, in a YAML/JSON config, ``{"tumor": ">0"}`` or ``{"tumor": {"rule": ">0", "color":
[1, 0, 0]}}``. Classes get output labels 1, 2, ... in the order given; where rules
overlap, the later class wins (so nested regions can be listed outer to inner). One class
means a one-channel sigmoid model; two or more mean a softmax over background + classes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from SARCore.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: Default colours (r, g, b in 0..1) of classes 1, 2, ...: tumor-like red first.
PALETTE = ((0.89, 0.10, 0.11), (0.98, 0.75, 0.25), (0.22, 0.49, 0.72), (0.30, 0.69, 0.29),
           (0.60, 0.31, 0.64), (1.00, 0.50, 0.00), (0.65, 0.34, 0.16), (0.97, 0.51, 0.75))

_RULE = re.compile(r"^(>=|>)?\s*(\d+)$|^(\d+)\s*-\s*(\d+)$|^\d+(\s*\|\s*\d+)+$")


@dataclass(frozen=True)
class ClassSpec:
    """One output class: its name, output label value, colour and source-label rule."""

    name: str
    label: int
    rule: str
    color: tuple[float, float, float]

    def select(self, labels: np.ndarray) -> np.ndarray:
        """Boolean mask of the voxels of ``labels`` this class takes."""
        rule = self.rule.replace(" ", "")
        if rule.startswith(">="):
            return labels >= int(rule[2:])
        if rule.startswith(">"):
            return labels > int(rule[1:])
        if "|" in rule:
            return np.isin(labels, [int(v) for v in rule.split("|")])
        if "-" in rule:
            low, high = (int(v) for v in rule.split("-"))
            return (labels >= low) & (labels <= high)
        return labels == int(rule)

    def to_header(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "color": list(self.color),
                "source_labels": self.rule}


def _entries(spec: str | Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(name, rule, colour or None) triples from either spelling of a mapping."""
    if isinstance(spec, Mapping):
        entries = []
        for name, value in spec.items():
            if isinstance(value, Mapping):
                entries.append((str(name), str(value.get("rule", "")), value.get("color")))
            else:
                entries.append((str(name), str(value), None))
        return entries
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"labels must name at least one class like 'tumor:>0', not {spec!r}")
    entries = []
    for part in spec.split(","):
        name, sep, rule = part.partition(":")
        if not sep:
            raise ConfigError(f"label class {part.strip()!r} lacks a rule",
                              hint="write name:rule, e.g. 'tumor:>0' or 'pancreas:1,tumor:2'")
        entries.append((name.strip(), rule.strip(), None))
    return entries


def _color(name: str, value: Any, index: int) -> tuple[float, float, float]:
    if value is None:
        return PALETTE[index % len(PALETTE)]
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(c, (int, float)) and 0 <= c <= 1 for c in value)):
        raise ConfigError(f"colour of class {name!r} must be [r, g, b] in 0..1, not {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def parse_classes(spec: str | Mapping[str, Any]) -> tuple[ClassSpec, ...]:
    """The classes a label mapping describes (see the module docstring for the syntax)."""
    classes = []
    for index, (name, rule, color) in enumerate(_entries(spec)):
        if not re.fullmatch(r"[A-Za-z0-9_ .-]+", name or ""):
            raise ConfigError(f"class name {name!r} must be letters, digits, '_', '-', '.'")
        if not _RULE.match(rule.replace(" ", "")):
            raise ConfigError(f"rule {rule!r} of class {name!r} is not understood",
                              hint="use >N, >=N, N, N|M|... or N-M")
        classes.append(ClassSpec(name, index + 1, rule.replace(" ", ""),
                                 _color(name, color, index)))
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        raise ConfigError(f"class names repeat: {names}")
    return tuple(classes)


def output_activation(classes: tuple[ClassSpec, ...]) -> str:
    """``sigmoid`` for one class, ``softmax`` (background + classes) for several."""
    return "sigmoid" if len(classes) == 1 else "softmax"


def output_channels(classes: tuple[ClassSpec, ...]) -> int:
    return 1 if len(classes) == 1 else len(classes) + 1


def map_labels(labels: np.ndarray, classes: tuple[ClassSpec, ...]) -> np.ndarray:
    """Source label values -> output class indices (uint8, 0 = background)."""
    out = np.zeros(labels.shape, dtype=np.uint8)
    for spec in classes:
        out[spec.select(labels)] = spec.label
    return out


def check_rule_matches(case_id: str, path: Any, values: Sequence[int],
                       classes: Sequence[ClassSpec], allow_empty: bool = False) -> None:
    """Refuse a case whose non-zero label values no class rule takes.

    Without this a wrong ``--labels`` rule (say ``tumor:5`` on BraTS labels 1-4) maps
    every tumor voxel to background and the case trains as tumor-free without a word.
    """
    found = [int(v) for v in values if int(v) != 0]
    rule = ",".join(f"{c.name}:{c.rule}" for c in classes)
    log.info("%s: label values %s", case_id, found or "none (no tumor)")
    if not found or allow_empty:
        return
    probe = np.array(found)
    if not any(spec.select(probe).any() for spec in classes):
        raise DataError(f"case {case_id!r} has label values {found} but the rule {rule!r} "
                        "matches none of them, so it would train as tumor-free", path,
                        "fix --labels (e.g. 'tumor:>0'), or pass --allow-empty-labels")
