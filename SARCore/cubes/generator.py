"""Multi-scale cube generator (paper Fig. 2): crop, resize to 64x64x32, store.

Each preprocessed volume gives ``per_volume`` crops per scale class; each crop is resized
to ``cube_shape`` with torch (integer average pooling first when shrinking by 2x or more,
so large crops do not alias, then trilinear). Random numbers come from
``seed``, the case id and the scale, so a case's cubes do not change when other cases or
other scales are added or removed (``--scales`` ablations reuse the same crops).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from SARCore.atomic import atomic_path, remove_stale_temporaries, write_json_atomic
from SARCore.cubes.config import SCALE_NAMES, CubeConfig
from SARCore.cubes.sampling import choose_box
from SARCore.cubes.store import (
    FORMAT,
    FORMAT_VERSION,
    INDEX_NAME,
    META_NAME,
    CubeStoreInfo,
    ShardWriter,
    info_from_meta,
    read_index,
    read_meta,
)
from SARCore.errors import DataError
from SARCore.io.checksum import sha256_file
from SARCore.io.modality import MODALITY_NAMES, modality_code
from SARCore.io.paths import inside_folder
from SARCore.preprocess.manifest import MANIFEST_NAME, entry_field, load_manifest
from SARCore.progress import NullReporter, Reporter

log = logging.getLogger(__name__)
RANGE_TOLERANCE = 1e-3
_EDITED = "manifest.json was edited by hand; preprocess the folder again"


@dataclass(frozen=True)
class SourceVolume:
    case_id: str
    path: Path
    modality: int
    sha256: str
    preset: dict | None = None  # the manifest's preset: pre-trained models' headers carry it
    per_volume: tuple[int, int, int] | None = None  # this folder's counts (Table 1 per dataset)


def resize_cube(crop: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``crop`` ``[x, y, z]`` resized to ``shape`` (float32): pool-by-integer, then trilinear."""
    tensor = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))[None, None]
    factors = [max(1, n // m) for n, m in zip(crop.shape, shape)]
    if max(factors) > 1:
        tensor = F.avg_pool3d(tensor, kernel_size=factors, stride=factors)
    if tuple(tensor.shape[2:]) != tuple(shape):
        tensor = F.interpolate(tensor, size=tuple(shape), mode="trilinear", align_corners=False)
    return tensor[0, 0].numpy()


def collect_volumes(folders: Sequence[str | Path],
                    per_volume: Sequence[Sequence[int] | None] | None = None
                    ) -> list[SourceVolume]:
    """The preprocessed volumes listed in the manifests of ``folders``, checked for [0, 1];
    ``per_volume[i]`` (optional) overrides the cube counts of folder ``i``'s volumes."""
    volumes: dict[str, SourceVolume] = {}
    outside = []
    counts = list(per_volume or [None] * len(folders))
    if len(counts) != len(folders):
        raise ValueError(f"per_volume has {len(counts)} entries for {len(folders)} folders")
    for folder, count in zip((Path(f) for f in folders), counts):
        own = tuple(int(n) for n in count) if count else None
        if own is not None and (len(own) != 3 or min(own) < 0):
            raise DataError(f"per_volume must be 3 counts >= 0, not {list(count)}", folder)
        manifest = load_manifest(folder, must_exist=True)
        for case_id, entry in manifest["cases"].items():
            if case_id in volumes:
                raise DataError(f"case {case_id!r} appears in two preprocessed folders", folder,
                                "give each case one preprocessed copy")
            low = entry_field(entry, folder, "intensity", "after", "min")
            high = entry_field(entry, folder, "intensity", "after", "max")
            if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
                raise DataError(f"manifest entry {case_id!r} has a non-numeric intensity "
                                "range", folder / MANIFEST_NAME, "preprocess the folder again")
            if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
                outside.append(f"{case_id} ({entry_field(entry, folder, 'preset', 'name')})")
                continue
            image = inside_folder(folder, str(entry_field(entry, folder, "outputs", "image")),
                                  folder / MANIFEST_NAME, hint=_EDITED)
            volumes[case_id] = SourceVolume(
                case_id, image, modality_code(entry_field(entry, folder, "modality")),
                _file_checksum(image, entry_field(entry, folder, "sha256", "image")),
                entry.get("preset"), own)
    if outside:
        raise DataError(f"cases not scaled to [0, 1]: {', '.join(outside)}", folders[0],
                        "pre-training cubes need the ct or mri preset")
    if not volumes:
        raise DataError("no preprocessed cases found", folders[0])
    return list(volumes.values())


def _file_checksum(path: Path, recorded: str) -> str:
    """The file's own sha256, which must still be the one the manifest recorded."""
    if not path.is_file():
        raise DataError("preprocessed volume listed in manifest.json is missing", path,
                        "preprocess the folder again")
    actual = sha256_file(path)
    if actual != recorded:
        raise DataError("preprocessed volume changed since it was written (its checksum "
                        "differs from manifest.json)", path,
                        "run preprocess again on the same --out to redo it")
    return actual


def build_cubes(preprocessed_dir: str | Path | Sequence[str | Path], out_dir: str | Path,
                config: CubeConfig | None = None, reporter: Reporter | None = None,
                per_volume: Sequence[Sequence[int] | None] | None = None) -> CubeStoreInfo:
    """Crop, resize and store cubes of every volume in ``preprocessed_dir`` (one or more);
    ``per_volume``: optional cube counts per folder (``None`` entries: the config's)."""
    config = config or CubeConfig()
    reporter = reporter or NullReporter()
    folders = [preprocessed_dir] if isinstance(preprocessed_dir, (str, Path)) \
        else list(preprocessed_dir)
    volumes = collect_volumes(folders, per_volume)
    out = Path(out_dir)
    sources = [{"case": v.case_id, "sha256": v.sha256,
                **({"per_volume": list(v.per_volume)} if v.per_volume else {})}
               for v in volumes]
    existing = _existing_store(out, config, sources)
    if existing is not None:
        reporter.log(f"cube store {out} is up to date")
        return existing
    _clear_store(out)
    total = sum(_counts(v, config)[s] for v in volumes for s in config.scales)
    if total == 0:
        raise DataError("per_volume gives no cubes for the chosen scales", folders[0])
    writer = ShardWriter(out, total, config.shard_size, config.cube_shape)
    index: dict[str, list] = {"scale": [], "modality": [], "case": [], "foreground": [],
                              "box": []}
    try:
        for number, volume in enumerate(volumes):
            reporter.progress(number, len(volumes), volume.case_id, stage="cubes")
            _volume_cubes(volume, number, config, writer, index)
    except BaseException:
        writer.abort()
        raise
    reporter.progress(len(volumes), len(volumes), "done", stage="cubes")
    return _write_index(out, config, volumes, sources, writer.names, index)


def _counts(volume: SourceVolume, config: CubeConfig) -> tuple[int, int, int]:
    return volume.per_volume or config.per_volume


def _volume_cubes(volume: SourceVolume, number: int, config: CubeConfig, writer: ShardWriter,
                  index: dict[str, list]) -> None:
    try:
        image = sitk.ReadImage(str(volume.path))
    except RuntimeError as exc:
        raise DataError("cannot read preprocessed volume", volume.path,
                        "preprocess the case again") from exc
    values = sitk.GetArrayViewFromImage(image).T  # [x, y, z] view, no copy
    mask = values > config.background_threshold
    for scale in config.scales:
        rng = np.random.default_rng([config.seed, zlib.crc32(volume.case_id.encode()), scale])
        for _ in range(_counts(volume, config)[scale]):
            box = choose_box(mask, scale, rng, config, image.GetSpacing())
            writer.add(resize_cube(values[box.slices()], config.cube_shape))
            for key, value in (("scale", scale), ("modality", volume.modality),
                               ("case", number), ("foreground", box.foreground),
                               ("box", (*box.start, *box.side))):
                index[key].append(value)
    del values, mask, image


def _write_index(out: Path, config: CubeConfig, volumes: list[SourceVolume],
                 sources: list[dict], shards: list[str], index: dict[str, list]
                 ) -> CubeStoreInfo:
    arrays = {"scale": np.array(index["scale"], np.int8),
              "modality": np.array(index["modality"], np.int8),
              "case": np.array(index["case"], np.int32),
              "foreground": np.array(index["foreground"], np.float32),
              "box": np.array(index["box"], np.int32).reshape(-1, 6)}
    with atomic_path(out / INDEX_NAME) as tmp:
        np.savez(tmp, **arrays)
    fallbacks = int(np.count_nonzero(arrays["foreground"] < config.min_foreground))
    sizes = [min(config.shard_size, len(arrays["scale"]) - i * config.shard_size)
             for i in range(len(shards))]
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config.to_dict(),
            "seed": config.seed, "count": int(len(arrays["scale"])),
            "shard_size": config.shard_size, "cube_shape": list(config.cube_shape),
            "dtype": "float16", "shards": [{"file": n, "count": c, "sha256": sha256_file(out / n)}
                       for n, c in zip(shards, sizes)],
            "cases": [v.case_id for v in volumes], "sources": sources,
            "modality_names": {"0": "CT", "1": "MRI"},
            "scale_names": {"0": "large", "1": "medium", "2": "small"}, "fallbacks": fallbacks,
            "counts": cube_counts(arrays["scale"], arrays["modality"]),
            "preprocess": _presets(volumes)}
    write_json_atomic(out / META_NAME, meta)
    if fallbacks:
        log.warning("%d cube(s) kept below min_foreground=%g after %d tries", fallbacks,
                    config.min_foreground, config.max_tries)
    return info_from_meta(out, meta, arrays)


def cube_counts(scales: np.ndarray, modalities: np.ndarray) -> dict[str, dict[str, int]]:
    """Cubes per scale name and per modality name (paper Table 1's columns)."""
    return {"scale": {SCALE_NAMES[s]: int(np.count_nonzero(scales == s))
                      for s in sorted(SCALE_NAMES) if np.any(scales == s)},
            "modality": {MODALITY_NAMES[m]: int(np.count_nonzero(modalities == m))
                         for m in sorted(MODALITY_NAMES) if np.any(modalities == m)}}


def cube_counts_text(per_scale: dict[int, int], per_modality: dict[int, int]) -> str:
    """``"per scale: large 8, ...; per modality: CT 16, MRI 16"`` (printed by the CLI)."""
    scales = ", ".join(f"{SCALE_NAMES[k]} {v}" for k, v in sorted(per_scale.items()))
    modalities = ", ".join(f"{MODALITY_NAMES[k]} {v}" for k, v in sorted(per_modality.items()))
    return f"per scale: {scales}; per modality: {modalities}"


def _presets(volumes: list[SourceVolume]) -> list[dict]:
    found: list[dict] = []
    for volume in volumes:
        if volume.preset and volume.preset not in found:
            found.append(volume.preset)
    return found


def _existing_store(out: Path, config: CubeConfig, sources: list[dict]) -> CubeStoreInfo | None:
    """The store already in ``out`` if it was built from the same inputs and settings."""
    if not (out / META_NAME).is_file():
        return None
    try:
        meta = read_meta(out)
        arrays = read_index(out)
    except DataError:
        return None
    same = meta.get("config") == config.to_dict() and meta.get("sources") == sources
    if not same or not all(_shard_intact(out, s) for s in meta.get("shards", [])):
        return None
    return info_from_meta(out, meta, arrays, skipped=True)


def _shard_intact(out: Path, shard: object) -> bool:
    """A shard is reused only while its bytes still match the checksum taken when written."""
    if not isinstance(shard, dict) or not isinstance(shard.get("file"), str):
        return False
    path = out / shard["file"]
    intact = _inside_store(out, shard["file"]) and path.is_file() and shard.get("sha256") == sha256_file(path)
    if not intact:
        log.info("cube shard %s is missing or changed; rebuilding the store", path)
    return intact


def _inside_store(out: Path, name: str) -> bool:
    try:
        inside_folder(out, name, out / META_NAME)
    except DataError:
        return False
    return True


def _clear_store(out: Path) -> None:
    """Remove an old store, metadata first, so a half-built one is never taken as whole."""
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    for name in (META_NAME, INDEX_NAME):
        (out / name).unlink(missing_ok=True)
    for shard in out.glob("cubes_*.npy"):
        shard.unlink()
