"""Modality codes used by cubes (MIAL labels) and model headers."""

from __future__ import annotations

from SARCore.errors import ConfigError

CT, MRI = 0, 1
MODALITY_NAMES = {CT: "CT", MRI: "MRI"}


def modality_code(name: str) -> int:
    """``"CT"``/``"ct"`` -> 0, ``"MRI"``/``"mr"``/``"mri"`` -> 1."""
    key = str(name).strip().upper()
    if key == "CT":
        return CT
    if key in ("MR", "MRI"):
        return MRI
    raise ConfigError(f"modality must be CT or MRI, not {name!r}")
