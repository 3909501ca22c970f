"""Resampling and intensity normalisation of scans (paper sec. 3.1 and 3.2).

:func:`preprocess_image` is the pure per-scan step (shared with inference);
:func:`preprocess_cases` runs it over a batch and keeps ``manifest.json``.
Names are imported on first use, so ``SARCore.preprocess.presets`` (used by the CLI's
argument parser) loads without SimpleITK and scipy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PRESETS": "presets", "Preset": "presets", "get_preset": "presets",
    "preprocess_image": "image",
    "CaseFailure": "pipeline", "PreprocessReport": "pipeline", "preprocess_cases": "pipeline",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'SARCore.preprocess' has no attribute {name!r}")
    return getattr(importlib.import_module(f"SARCore.preprocess.{_EXPORTS[name]}"), name)
