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
import logging
from pathlib import Path
from typing import Any

from SARCore.atomic import write_json_atomic
from SARCore.errors import DataError
from SARCore.io.checksum import sha256_file
from SARCore.version import __version__

log = logging.getLogger(__name__)

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
    version = data.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise DataError(f"manifest format_version {version!r} is not a whole number", path,
                        "the file was edited by hand; delete it to preprocess again")
    if version > FORMAT_VERSION:
        raise DataError(f"manifest format {version} is newer than this "
                        f"SARCore ({FORMAT_VERSION})", path, "update SARCore")
    data.setdefault("cases", {})
    data.setdefault("failed", {})
    for key in ("cases", "failed"):
        if not isinstance(data[key], dict) or not all(isinstance(v, dict)
                                                      for v in data[key].values()):
            raise DataError(f'manifest "{key}" must map case ids to objects', path,
                            "the file was edited by hand; delete it to preprocess again")
    return data


def entry_field(entry: dict[str, Any], folder: Path, *keys: str) -> Any:
    """``entry[k1][k2]...``, or a :class:`DataError` naming the manifest and the field."""
    value: Any = entry
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise DataError(f"manifest entry {entry.get('case_id')!r} lacks "
                            f"{'.'.join(keys)}", Path(folder) / MANIFEST_NAME,
                            "the file was edited by hand; preprocess the folder again")
        value = value[key]
    return value


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
    return outputs_intact(entry, folder)


def outputs_intact(entry: dict[str, Any], folder: Path) -> bool:
    """Whether every output of ``entry`` is still the file whose checksum it recorded.

    Streaming the outputs costs far less than preprocessing them again, and it catches
    an output truncated, replaced or edited after the manifest was written.
    """
    outputs = entry.get("outputs") or {}
    sums = entry.get("sha256") or {}
    if not isinstance(outputs, dict) or not isinstance(sums, dict):
        return False
    for key, name in outputs.items():
        if not name:
            continue
        path = folder / str(name)
        if not path.is_file() or not sums.get(key) or sha256_file(path) != sums[key]:
            log.info("%s: output %s changed since it was written; redoing the case",
                     entry.get("case_id"), path)
            return False
    return True
