"""``manifest.json`` of a preprocessed folder: what each output came from and how.

Layout (``format_version`` 1)::

    {"format": "sar-preprocessed", "format_version": 1, "sarcore_version": "...",
     "cases": {"<case_id>": {"case_id", "status": "done", "sources": {"image": [...],
               "label": ... | null}, "modality": "CT" | "MRI", "preset": {...},
               "original": {size, spacing, origin, direction, pixel_type},
               "preprocessed": {size, spacing, origin, direction},
               "intensity": {"before": {min, max, mean, std}, "after": {...}},
               "labels": [0, 1, ...] | null, "outputs": {"image": "<id>.nii.gz",
               "label": "<id>_label.nii.gz" | null}, "sha256": {"image_source",
               "label_source", "image", "label"}, "seconds": ...}},
     "failed": {"<case_id>": {"file": ..., "reason": ...}}}

Rewritten atomically after every case, so a killed run loses at most the case in hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from SARCore.atomic import write_json_atomic
from SARCore.errors import DataError
from SARCore.version import __version__

MANIFEST_NAME = "manifest.json"
FORMAT = "sar-preprocessed"
FORMAT_VERSION = 1


def empty_manifest() -> dict[str, Any]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "sarcore_version": __version__,
            "cases": {}, "failed": {}}


def load_manifest(folder: str | Path, must_exist: bool = False) -> dict[str, Any]:
    """The manifest in ``folder`` (an empty one if there is none and ``must_exist`` is off)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        if must_exist:
            raise DataError("no manifest.json: not a preprocessed folder", folder,
                            "run `python -m SARCore preprocess ... --out DIR` first")
        return empty_manifest()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable manifest ({exc})", path,
                        "delete it to preprocess the folder again") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError("not a SARCore preprocessing manifest", path)
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise DataError(f"manifest format {data.get('format_version')} is newer than this "
                        f"SARCore ({FORMAT_VERSION})", path, "update SARCore")
    data.setdefault("cases", {})
    data.setdefault("failed", {})
    return data


def save_manifest(folder: str | Path, manifest: dict[str, Any]) -> None:
    manifest["sarcore_version"] = __version__
    write_json_atomic(Path(folder) / MANIFEST_NAME, manifest)


def is_current(manifest: dict[str, Any], folder: Path, case_id: str,
               checksums: dict[str, str | None], preset: dict[str, Any]) -> bool:
    """Whether ``case_id`` is done from the same sources with the same preset."""
    entry = manifest["cases"].get(case_id)
    if not entry or entry.get("status") != "done" or entry.get("preset") != preset:
        return False
    sums = entry.get("sha256", {})
    if sums.get("image_source") != checksums["image_source"] \
            or sums.get("label_source") != checksums["label_source"]:
        return False
    outputs = [name for name in entry.get("outputs", {}).values() if name]
    return all((folder / name).is_file() for name in outputs)
