"""Image grid bookkeeping: spacing, origin, direction and size, kept end to end.

Preprocessing only changes the spacing (and with it the size); origin and direction are
carried over unchanged, so an output overlays its source in any viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

#: Two grids "match" when sizes are equal and the rest agrees within these tolerances:
#: spacing relative, origin as a fraction of the smallest voxel side, direction cosines absolute.
SPACING_RTOL = 1e-3
ORIGIN_VOXEL_FRACTION = 1e-2
DIRECTION_ATOL = 1e-3


@dataclass(frozen=True)
class Geometry:
    """The physical grid of a 3D image (sizes in voxels, lengths in mm, axes ``x, y, z``)."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> Geometry:
        return cls(tuple(int(s) for s in image.GetSize()),
                   tuple(float(s) for s in image.GetSpacing()),
                   tuple(float(o) for o in image.GetOrigin()),
                   tuple(float(d) for d in image.GetDirection()))

    def apply(self, image: sitk.Image) -> sitk.Image:
        """Stamp spacing, origin and direction on ``image`` (whose size must be ``size``)."""
        if tuple(image.GetSize()) != self.size:
            raise ValueError(f"image size {image.GetSize()} does not match grid {self.size}")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def with_spacing(self, spacing: tuple[float, float, float]) -> Geometry:
        """The grid covering the same physical extent at ``spacing`` (origin kept)."""
        size = tuple(max(1, int(round(n * s / t))) for n, s, t in
                     zip(self.size, self.spacing, spacing))
        return Geometry(size, tuple(float(t) for t in spacing), self.origin, self.direction)

    def extent_mm(self) -> tuple[float, float, float]:
        return tuple(n * s for n, s in zip(self.size, self.spacing))

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "spacing": list(self.spacing),
                "origin": list(self.origin), "direction": list(self.direction)}


def grid_mismatch(reference: Geometry, other: Geometry) -> str | None:
    """Describe how ``other`` differs from ``reference`` beyond tolerance, or ``None``."""
    if reference.size != other.size:
        return f"size {other.size} differs from the image's {reference.size}"
    ref_sp, oth_sp = np.array(reference.spacing), np.array(other.spacing)
    if np.any(np.abs(ref_sp - oth_sp) > SPACING_RTOL * ref_sp):
        return f"spacing {_fmt(other.spacing)} differs from the image's {_fmt(reference.spacing)}"
    shift = np.abs(np.array(reference.origin) - np.array(other.origin))
    if np.any(shift > ORIGIN_VOXEL_FRACTION * ref_sp.min()):
        return f"origin {_fmt(other.origin)} differs from the image's {_fmt(reference.origin)}"
    turn = np.abs(np.array(reference.direction) - np.array(other.direction))
    if np.any(turn > DIRECTION_ATOL):
        return "direction differs from the image's"
    return None


def is_orthogonal(direction: tuple[float, ...]) -> bool:
    """Whether the direction matrix's axes are at right angles (oblique is fine, shear not)."""
    matrix = np.array(direction, dtype=np.float64).reshape(3, 3)
    return bool(np.allclose(matrix.T @ matrix, np.eye(3), atol=DIRECTION_ATOL))


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
