"""Real inputs for the fine-tuning and experiment tests, built with the package's own API.

* :func:`make_pretrained_model`: pre-train SAR for 2 steps at width_divisor 8 on the
  shared real cube store (2 CTs + 2 MRIs, 32x32x16 cubes; ``small_real_cubes_dir`` in
  conftest.py): a real (tiny) pre-trained model file with both modalities in its header.
* :func:`coarse_config`: fine-tuning settings on the 4 BRATS 2015 cases at 4 mm with
  32x32x16 patches, small enough for a 2-core CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretrain_data import one_torch_thread

from SARCore.finetune.config import FinetuneConfig
from SARCore.finetune.data import cache_folder, find_labeled_cases, load_volumes
from SARCore.finetune.setup import resolve_preset
from SARCore.pretrain.config import config_from_mapping
from SARCore.pretrain.runner import pretrain

COARSE = (4.0, 4.0, 4.0)


def make_pretrained_model(cubes_dir: Path, work: Path, method: str = "sar") -> Path:
    """A model pre-trained for 2 steps on a real cube store (width_divisor 8)."""
    config = config_from_mapping({"method": method, "width_divisor": 8, "epochs": 1,
                                  "max_steps": 2, "batch_size": 2, "device": "cpu",
                                  "val_fraction": 0.5})
    with one_torch_thread():
        return pretrain(config, cubes_dir, work / f"pretrain_{method}").model_path


def coarse_config(data: Path, **changes: Any) -> FinetuneConfig:
    """Fine-tuning on BRATS 2015 FLAIR, whole tumor, 4 mm, tiny patches and steps."""
    settings: dict[str, Any] = dict(
        data=str(data / "brats2015"), sequences=("flair",), labels="tumor:>0",
        preset="brats", spacing=COARSE, patch_size=(32, 32, 16), trials=1, test_ratio=0.25,
        width_divisor=8, epochs=2, max_steps=4, batch_size=2, patches_per_case=2,
        val_patches_per_case=2, device="cpu")
    settings.update(changes)
    return FinetuneConfig(**settings)


def fill_brats_cache(data: Path, cache_root: Path) -> Path:
    """Preprocess every BRATS 2015 case of :func:`coarse_config` into ``cache_root``."""
    config = coarse_config(data)
    cases = find_labeled_cases(config.data, config.sequences)
    preset = resolve_preset(config, None, "MRI")
    load_volumes(cases, preset, config.classes,
                 cache_folder(cache_root, preset, config.classes, config.sequences))
    return cache_root
