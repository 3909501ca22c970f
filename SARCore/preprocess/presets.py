"""Preprocessing presets: how a scan is resampled and its intensities normalised.

A :class:`Preset` is plain data and round-trips through JSON (:meth:`Preset.to_dict` /
:meth:`Preset.from_dict`), so a model file can carry the preset it was trained with and
the segmentation pipeline can apply exactly the same steps to a new scan.

Built-in presets (:data:`PRESETS`):

* ``ct``       - pre-training CT (paper sec. 3.1): 1 mm isotropic, third-order B-spline,
  clip to [-1000, 1000] HU, min-max to [0, 1] per volume.
* ``mri``      - pre-training MRI: 1 mm, B-spline, clip to [0, 4000], min-max to [0, 1].
* ``brats``    - BraTS fine-tuning (sec. 3.2): 1 mm (BraTS already is), z-score over the
  non-zero (brain) voxels; voxels outside the brain stay exactly 0.
* ``pancreas`` - MSD pancreas fine-tuning: clip to [-96, 215] HU, subtract 77.99, divide
  by 75.40. The paper gives no spacing for this task; we resample to 1 mm isotropic, the
  scale the encoder saw in pre-training (MSD pancreas is about 0.8 x 0.8 x 2.5 mm).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from SARCore.config import check_choice, check_positive, from_mapping, to_dict
from SARCore.errors import ConfigError

NORMALIZATIONS = ("minmax", "zscore_nonzero", "affine")
INTERPOLATIONS = ("bspline", "linear")
MODALITIES = ("CT", "MRI")
#: The pre-training cube; a smaller volume cannot give one crop at full resolution.
CUBE_SHAPE = (64, 64, 32)


def _floats(name: str, values: Any, count: int) -> tuple[float, ...]:
    try:
        result = tuple(float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be {count} numbers, not {values!r}") from exc
    if len(result) != count:
        raise ConfigError(f"{name} must be {count} numbers, not {values!r}")
    return result


@dataclass(frozen=True)
class Preset:
    """Resampling and intensity settings; see the module docstring for the built-ins."""

    name: str
    modality: str  # "CT" | "MRI": the modality the preset is meant for (cube MIAL labels)
    target_spacing: tuple[float, float, float] | None = (1.0, 1.0, 1.0)  # None: keep
    clip: tuple[float, float] | None = None  # (low, high), applied before normalising
    normalization: str = "minmax"  # "minmax" | "zscore_nonzero" | "affine"
    shift: float = 0.0  # "affine": (value - shift) / scale
    scale: float = 1.0
    interpolation: str = "bspline"  # image interpolation; labels always nearest neighbour
    min_shape: tuple[int, int, int] = CUBE_SHAPE  # smallest output size accepted (voxels)
    label_map: tuple[tuple[int, int], ...] = ()  # (source value, new value) pairs

    def __post_init__(self) -> None:
        # Accept lists (JSON, YAML, argparse) wherever a tuple is meant.
        if self.target_spacing is not None:
            object.__setattr__(self, "target_spacing", _floats("target_spacing",
                                                              self.target_spacing, 3))
            for value in self.target_spacing:
                check_positive("target_spacing", value)
        if self.clip is not None:
            object.__setattr__(self, "clip", _floats("clip", self.clip, 2))
            if not self.clip[0] < self.clip[1]:
                raise ConfigError(f"clip must be (low, high) with low < high, not {self.clip}")
        object.__setattr__(self, "min_shape", tuple(int(v) for v in self.min_shape))
        object.__setattr__(self, "label_map", tuple((int(a), int(b)) for a, b in self.label_map))
        check_choice("modality", self.modality, MODALITIES)
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        check_positive("scale", self.scale)
        if len(self.min_shape) != 3 or min(self.min_shape) < 1:
            raise ConfigError(f"min_shape must be 3 positive integers, not {self.min_shape}")
        if any(b < 0 for _, b in self.label_map):
            raise ConfigError(f"label_map targets must be >= 0, not {self.label_map}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (model headers, manifest.json)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preset:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        return from_mapping(cls, data, source="preset")


PRESETS: dict[str, Preset] = {
    "ct": Preset("ct", "CT", clip=(-1000.0, 1000.0)),
    "mri": Preset("mri", "MRI", clip=(0.0, 4000.0)),
    "brats": Preset("brats", "MRI", normalization="zscore_nonzero"),
    "pancreas": Preset("pancreas", "CT", clip=(-96.0, 215.0), normalization="affine",
                       shift=77.99, scale=75.40),
}


def get_preset(name: str, **overrides: Any) -> Preset:
    """Built-in preset ``name`` with some fields replaced; ``None`` overrides are ignored."""
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), list(PRESETS), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(PRESETS)}"
        raise ConfigError(f"unknown preset {name!r}", hint=hint)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return from_mapping(Preset, {**PRESETS[name].to_dict(), **changes}, source="preset")

