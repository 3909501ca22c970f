"""A segmentation model file read into what inference needs, with its header checked.

Header fields used (see :mod:`SARCore.models.modelfile`): ``task`` must be
"segmentation"; ``in_channels`` (= number of ``sequences`` when given), ``out_channels``,
``output_activation`` ("sigmoid" for one foreground channel, "softmax" for background +
classes; default: sigmoid when ``out_channels`` is 1), ``patch_size``, ``preprocess`` (a
:class:`~SARCore.preprocess.presets.Preset` dict), ``classes``, ``sequences``,
``modalities``. Output channel ``i`` of a softmax model is ``classes[i - 1]``; the one
channel of a sigmoid model is ``classes[0]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from SARCore.errors import ConfigError, ModelFileError
from SARCore.io.discovery import SEQUENCE_TOKENS
from SARCore.models.modelfile import build_unet, load_model_file
from SARCore.preprocess.presets import Preset

ACTIVATIONS = ("sigmoid", "softmax")
#: Colors (0..1) for classes whose header gives none: Slicer-like tissue tints.
DEFAULT_COLORS = ((0.86, 0.24, 0.24), (0.30, 0.69, 0.29), (0.22, 0.49, 0.72),
                  (0.60, 0.31, 0.64), (1.00, 0.50, 0.00), (0.90, 0.90, 0.20))


@dataclass(frozen=True)
class SegmentClass:
    """One foreground class: its name, label-map value and display color (r, g, b in 0..1)."""

    name: str
    label: int
    color: tuple[float, float, float]


@dataclass
class SegmentationModel:
    """A loaded segmentation network (CPU, eval mode) and what its header promises."""

    path: Path
    header: dict[str, Any]
    net: torch.nn.Module
    preset: Preset
    classes: tuple[SegmentClass, ...]
    activation: str
    sequences: tuple[str, ...]
    modalities: tuple[str, ...]
    patch_size: tuple[int, int, int]

    @property
    def in_channels(self) -> int:
        return int(self.header["in_channels"])

    @property
    def out_channels(self) -> int:
        return int(self.header["out_channels"])


def load_segmentation_model(path: str | Path) -> SegmentationModel:
    """Read, verify and build a segmentation model; every problem is a ModelFileError."""
    path = Path(path)
    header, state = load_model_file(path, task="segmentation")
    net = build_unet(header, state, path).eval()
    activation = _activation(header, path)
    out_channels = int(header["out_channels"])
    sequences = tuple(str(s).lower() for s in header.get("sequences") or ())
    if sequences and len(sequences) != int(header["in_channels"]):
        raise ModelFileError(f"header lists {len(sequences)} sequences ({', '.join(sequences)}) "
                             f"but in_channels is {header['in_channels']}", path)
    unknown = [s for s in sequences if s not in SEQUENCE_TOKENS]
    if unknown:
        raise ModelFileError(f"unknown sequence(s) {', '.join(unknown)} in the header", path,
                             f"known: {', '.join(SEQUENCE_TOKENS)}")
    return SegmentationModel(
        path=path, header=header, net=net, preset=_preset(header, path),
        classes=_classes(header, activation, out_channels, path), activation=activation,
        sequences=sequences,
        modalities=tuple(str(m).upper() for m in header.get("modalities") or ()),
        patch_size=_patch_size(header, path))


def _activation(header: dict[str, Any], path: Path) -> str:
    out_channels = int(header["out_channels"])
    activation = header.get("output_activation") or ("sigmoid" if out_channels == 1
                                                     else "softmax")
    if activation not in ACTIVATIONS:
        raise ModelFileError(f"unknown output_activation {activation!r} (expected sigmoid or "
                             "softmax)", path)
    if activation == "sigmoid" and out_channels != 1:
        raise ModelFileError(f"a sigmoid model must have one output channel, not "
                             f"{out_channels} (overlapping classes cannot be one label map)",
                             path, "use softmax with background + classes")
    if activation == "softmax" and out_channels < 2:
        raise ModelFileError("a softmax model needs background + at least one class", path)
    return activation


def _preset(header: dict[str, Any], path: Path) -> Preset:
    data = header.get("preprocess")
    if not isinstance(data, dict):
        raise ModelFileError("header has no 'preprocess' preset; the model cannot say how to "
                             "prepare a scan", path)
    data = dict(data)
    if "spacing" in data and "target_spacing" not in data:  # older short form
        data["target_spacing"] = data.pop("spacing")
    try:
        preset = Preset.from_dict(data)
    except ConfigError as exc:
        raise ModelFileError(f"header 'preprocess' is not a valid preset: {exc}", path) from exc
    # Inference pads small volumes itself; the cube-size floor is for pre-training crops.
    return Preset.from_dict({**preset.to_dict(), "min_shape": (1, 1, 1)})


def _classes(header: dict[str, Any], activation: str, out_channels: int,
             path: Path) -> tuple[SegmentClass, ...]:
    count = 1 if activation == "sigmoid" else out_channels - 1
    entries = header.get("classes") or [{} for _ in range(count)]
    if not isinstance(entries, list) or len(entries) != count:
        raise ModelFileError(f"header lists {len(entries) if isinstance(entries, list) else 0} "
                             f"classes but the {activation} output has {count}", path)
    classes = []
    for index, entry in enumerate(entries, start=1):
        try:
            color = tuple(float(c) for c in entry.get("color", DEFAULT_COLORS[
                (index - 1) % len(DEFAULT_COLORS)]))
            item = SegmentClass(str(entry.get("name", f"class_{index}")),
                                int(entry.get("label", index)), color)  # type: ignore[arg-type]
        except (AttributeError, TypeError, ValueError) as exc:
            raise ModelFileError(f"class entry {entry!r} is malformed", path) from exc
        if len(item.color) != 3 or not all(0.0 <= c <= 1.0 for c in item.color):
            raise ModelFileError(f"class {item.name!r}: color must be 3 numbers in 0..1", path)
        if not 1 <= item.label <= 65535:
            raise ModelFileError(f"class {item.name!r}: label must be in 1..65535", path)
        classes.append(item)
    if len({c.label for c in classes}) != len(classes):
        raise ModelFileError("class label values repeat", path)
    return tuple(classes)


def _patch_size(header: dict[str, Any], path: Path) -> tuple[int, int, int]:
    value = header.get("patch_size") or header.get("input_size") or (64, 64, 32)
    try:
        patch = tuple(int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"patch_size {value!r} is not 3 integers", path) from exc
    if len(patch) != 3 or any(p < 8 or p % 8 for p in patch):
        raise ModelFileError(f"patch_size {value!r} must be 3 multiples of 8", path)
    return patch  # type: ignore[return-value]
