"""The cube store as pre-training sees it: training and validation sets split by case,
the modalities present (MIAL needs both) and what the model header says about the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from SARCore.cubes import CubeDataset
from SARCore.errors import ConfigError, DataError
from SARCore.io.modality import CT, MODALITY_NAMES, MRI
from SARCore.pretrain.config import SCALE_NAMES, PretrainConfig


@dataclass
class CubeSets:
    train: CubeDataset
    val: CubeDataset | None
    modalities: tuple[str, ...]          # names present in the selected cubes
    n_cubes: int
    cube_size: tuple[int, int, int]
    preprocess: Any                      # preset(s) from the store's metadata, if recorded


def _store_preprocess(meta: dict[str, Any]) -> Any:
    """Preprocessing presets the store records (``None`` when it does not say)."""
    for key in ("preprocess", "presets", "preset"):
        if meta.get(key):
            return meta[key]
    presets = [s["preset"] for s in meta.get("sources", []) if isinstance(s, dict)
               and s.get("preset")]
    unique = [p for i, p in enumerate(presets) if p not in presets[:i]]
    return unique[0] if len(unique) == 1 else (unique or None)


def load_cube_sets(config: PretrainConfig, cubes_dir: str | Path) -> CubeSets:
    """Select ``config.scales``/``modalities`` and split off validation cases."""
    modalities = list(config.modalities) or None
    cubes = CubeDataset(cubes_dir, scales=list(config.scales), modalities=modalities)
    if len(cubes) == 0:
        wanted = ", ".join(SCALE_NAMES[s] for s in config.scales)
        raise DataError(f"the cube store has no cubes of the selected scales ({wanted})"
                        + (f" and modalities ({', '.join(config.modalities)})"
                           if config.modalities else ""), cubes_dir,
                        "check --scales/--modalities against `sar cubes` settings")
    present = tuple(MODALITY_NAMES[int(c)] for c in np.unique(cubes.modalities))
    if config.spec.adversarial and not {CT, MRI} <= {int(c) for c in np.unique(cubes.modalities)}:
        raise ConfigError(f"method {config.method!r} trains a CT-vs-MRI discriminator and "
                          f"needs cubes of both modalities; {Path(cubes_dir)} has only "
                          f"{', '.join(present)}",
                          hint="add cubes of the other modality, or use --method genesis/sa")
    train, val = cubes.split(config.val_fraction, seed=config.loop.seed)
    if len(val) == 0:
        val = None
    return CubeSets(train, val, present, len(cubes), tuple(cubes.meta["cube_shape"]),
                    _store_preprocess(cubes.meta))
