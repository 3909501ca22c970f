"""On-disk cube store: float16 ``.npy`` shards, an index, and a memory-mapped Dataset.

Folder layout::

    cubes_00000.npy ...  float16 (N, 64, 64, 32) shards, written atomically one by one
    index.npz            per cube: scale (int8), modality (int8), case (int32),
                         foreground (float32), box (int32, N x 6: start xyz, side xyz)
    cubes.json           format, config, seed, case names and sources, shard list,
                         counts; written last, so its presence means "complete"

Cube ``g`` lives in shard ``g // shard_size`` at row ``g % shard_size``.
:class:`CubeDataset` opens shards with ``mmap_mode="r"``: memory holds only the index.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from SARCore.atomic import atomic_path
from SARCore.errors import DataError
from SARCore.io.modality import modality_code
from SARCore.io.paths import inside_folder

META_NAME, INDEX_NAME = "cubes.json", "index.npz"
FORMAT, FORMAT_VERSION = "sar-cubes", 1
INDEX_FIELDS = ("scale", "modality", "case", "foreground", "box")


def shard_name(number: int) -> str:
    return f"cubes_{number:05d}.npy"


@dataclass
class CubeStoreInfo:
    """Summary of a built cube store (what :func:`~SARCore.cubes.build_cubes` returns)."""

    root: Path
    count: int
    per_scale: dict[int, int]
    per_modality: dict[int, int]
    cases: list[str]
    shards: list[str]
    fallbacks: int = 0  # cubes kept below min_foreground after max_tries
    skipped: bool = False  # True when an identical store was already there
    config: dict[str, Any] = field(default_factory=dict)


class ShardWriter:
    """Fills float16 shards of a known total size; each appears atomically when full."""

    def __init__(self, root: Path, total: int, shard_size: int,
                 cube_shape: tuple[int, int, int]) -> None:
        self.root, self.total, self.shard_size, self.cube_shape = root, total, shard_size, \
            cube_shape
        self.count = 0
        self.names: list[str] = []
        self._stack: contextlib.ExitStack | None = None
        self._array: np.ndarray | None = None

    def add(self, cube: np.ndarray) -> None:
        row = self.count % self.shard_size
        if row == 0:
            self._open(self.count // self.shard_size)
        self._array[row] = cube
        self.count += 1
        if self.count % self.shard_size == 0 or self.count == self.total:
            self._close()

    def _open(self, number: int) -> None:
        rows = min(self.shard_size, self.total - number * self.shard_size)
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.root / shard_name(number)))
        self._array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                                shape=(rows, *self.cube_shape))
        self.names.append(shard_name(number))

    def _close(self) -> None:
        self._array.flush()
        self._array = None  # unmap before the rename
        self._stack.close()
        self._stack = None

    def abort(self) -> None:
        """Drop the shard in progress (its temporary file is removed)."""
        if self._stack is not None:
            self._array = None
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._stack = None


def read_meta(root: str | Path) -> dict[str, Any]:
    """``cubes.json`` of a complete store (DataError if missing or foreign)."""
    path = Path(root) / META_NAME
    if not path.is_file():
        raise DataError("not a cube store (no cubes.json)", root,
                        "build one with `python -m SARCore cubes PREPROCESSED_DIR --out DIR`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable cube store metadata ({exc})", path) from exc
    if meta.get("format") != FORMAT or meta.get("format_version", 0) > FORMAT_VERSION:
        raise DataError("not a cube store this SARCore can read", path)
    return meta


def read_index(root: str | Path) -> dict[str, np.ndarray]:
    path = Path(root) / INDEX_NAME
    try:
        with np.load(path) as data:
            return {name: data[name] for name in INDEX_FIELDS}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"unreadable cube index ({exc})", path) from exc


def info_from_meta(root: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray],
                   skipped: bool = False) -> CubeStoreInfo:
    """:class:`CubeStoreInfo` of a store from its ``cubes.json`` and index arrays."""
    def counts(values: np.ndarray) -> dict[int, int]:
        return {int(k): int(n) for k, n in zip(*np.unique(values, return_counts=True))}

    return CubeStoreInfo(root, meta["count"], counts(arrays["scale"]),
                         counts(arrays["modality"]), meta["cases"],
                         [s["file"] for s in meta["shards"]], meta["fallbacks"], skipped,
                         meta["config"])


class CubeDataset(Dataset):
    """Cubes of a store, optionally only some scales, modalities or cases.

    ``ds[i]`` is ``{"cube": FloatTensor[1, 64, 64, 32] in [0, 1], "scale": int64 tensor,
    "modality": int64 tensor, "case": int}``. Shards are memory-mapped on first use in
    each process (DataLoader workers included), never read whole.
    """

    def __init__(self, root: str | Path, scales: list[int] | None = None,
                 modalities: list[int | str] | None = None, cases: list[int] | None = None
                 ) -> None:
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.index = read_index(self.root)
        self.case_names: list[str] = list(self.meta["cases"])
        keep = np.ones(len(self.index["scale"]), dtype=bool)
        if scales is not None:
            keep &= np.isin(self.index["scale"], list(scales))
        if modalities is not None:
            codes = [m if isinstance(m, int) else modality_code(m) for m in modalities]
            keep &= np.isin(self.index["modality"], codes)
        if cases is not None:
            keep &= np.isin(self.index["case"], list(cases))
        self.ids = np.flatnonzero(keep)
        self._shards: dict[int, np.ndarray] = {}
        self._shard_paths = [inside_folder(self.root, str(s["file"]), self.root / META_NAME,
                                           hint="cubes.json was edited by hand; run cubes "
                                                "again into a new folder")
                             for s in self.meta["shards"]]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, item: int) -> dict[str, Any]:
        cube_id = int(self.ids[item])
        shard, row = divmod(cube_id, int(self.meta["shard_size"]))
        cube = np.asarray(self._shard(shard)[row], dtype=np.float32)
        return {"cube": torch.from_numpy(cube)[None],
                "scale": torch.tensor(int(self.index["scale"][cube_id]), dtype=torch.int64),
                "modality": torch.tensor(int(self.index["modality"][cube_id]),
                                         dtype=torch.int64),
                "case": int(self.index["case"][cube_id])}

    @property
    def scales(self) -> np.ndarray:
        """Scale class of each selected cube (for samplers and class weights)."""
        return self.index["scale"][self.ids]

    @property
    def modalities(self) -> np.ndarray:
        return self.index["modality"][self.ids]

    @property
    def cases(self) -> np.ndarray:
        return self.index["case"][self.ids]

    def split(self, val_fraction: float, seed: int = 0) -> tuple[CubeDataset, CubeDataset]:
        """(train, validation) by case, so no scan feeds both; see :func:`split_cases`."""
        train, val = split_cases(self.cases, self.modalities, val_fraction, seed)
        return self._subset(train), self._subset(val)

    def _subset(self, case_numbers: list[int]) -> CubeDataset:
        subset = object.__new__(CubeDataset)
        subset.__dict__.update(self.__dict__)
        subset.ids = self.ids[np.isin(self.cases, case_numbers)]
        subset._shards = {}
        return subset

    def _shard(self, number: int) -> np.ndarray:
        if number not in self._shards:
            path = self._shard_paths[number]
            try:
                self._shards[number] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DataError(f"unreadable cube shard ({exc})", path) from exc
        return self._shards[number]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_shards"] = {}  # memory maps are reopened in the receiving process
        return state


def split_cases(cases: np.ndarray, modalities: np.ndarray, val_fraction: float,
                seed: int = 0) -> tuple[list[int], list[int]]:
    """Case numbers for (train, validation): ``val_fraction`` of the cases of each modality.

    Every modality with at least two cases gives at least one validation case, so the
    MIAL discriminator is validated on both; a lone case stays in training.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction!r}")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for code in np.unique(modalities):
        group = np.unique(cases[modalities == code])
        group = group[rng.permutation(len(group))]
        count = 0
        if val_fraction > 0 and len(group) >= 2:
            count = min(max(int(round(val_fraction * len(group))), 1), len(group) - 1)
        val.extend(int(c) for c in group[:count])
        train.extend(int(c) for c in group[count:])
    return sorted(train), sorted(val)
