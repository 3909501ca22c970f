"""Fine-tuning settings (one frozen dataclass, checked on creation).

Defaults follow the paper and MG's fine-tuning recipe: Dice loss, Adam lr 1e-3,
ReduceLROnPlateau (factor 0.5, patience 6), early stopping, every layer trainable,
64x64x32 patches with foreground oversampling. Where neither says, the choice is noted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from SARCore.config import check_choice, check_positive, check_probability
from SARCore.errors import ConfigError
from SARCore.finetune.labels import ClassSpec, parse_classes

LOSSES = ("dice", "dice_ce")


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, not {value!r}")


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything one ``finetune`` run needs; ``from_mapping`` reads it from YAML/JSON."""

    data: str = ""                      # MSD dataset.json/folder, BraTS folder or CSV
    init: str = "scratch"               # "scratch" or a pre-trained .sarmodel file
    sequences: tuple[str, ...] = ()     # e.g. ("flair",); () = the dataset's only image
    labels: str | Mapping[str, Any] = "tumor:>0"   # see SARCore.finetune.labels
    preset: str = "auto"                # auto: by data layout, else model header (setup.py)
    spacing: tuple[float, ...] = ()     # overrides the preset's spacing (mm), e.g. (2, 2, 2)
    modality: str = ""                  # CT | MRI; "" = from the dataset or the preset
    label_fraction: float = 1.0         # share of the training cases that keep labels
    seed: int = 0
    trials: int = 1                     # random train/test splits (paper BraTS: 5)
    folds: int = 0                      # K-fold cross-validation instead (paper pancreas: 5)
    test_ratio: float = 1 / 3           # trials: train:test = 2:1
    val_ratio: float = 0.2              # labeled cases held out for LR plateau/early stop
    loss: str = "dice"                  # dice | dice_ce
    ce_weight: float = 1.0              # weight of cross-entropy in dice_ce
    include_background: bool = False    # softmax Dice over foreground classes only
    patch_size: tuple[int, int, int] = (64, 64, 32)
    patches_per_case: int = 8           # training patches per case per epoch
    val_patches_per_case: int = 4       # fixed validation patches per case
    foreground_fraction: float = 1 / 3  # patches centred on a foreground voxel
    flip_probability: float = 0.5       # per axis in flip_axes; 0 = no augmentation
    flip_axes: tuple[int, ...] = (0, 1, 2)
    width_divisor: int = 0              # scratch only (0 = 1); a model keeps its own
    transfer_head: bool = True          # reuse a pre-trained 1x1 head of the right shape
    head_prior: float = 0.05            # a fresh head starts predicting this foreground
                                        # probability everywhere (0: PyTorch's default init)
    epochs: int = 100
    max_steps: int = 0                  # optimizer steps per trial in all (0: no limit)
    steps_per_epoch: int = 0            # cap on batches per epoch (0: one pass)
    batch_size: int = 4                 # not in the paper; 4 patches fit a 11 GB GPU
    lr: float = 1e-3
    plateau_factor: float = 0.5
    plateau_patience: int = 6
    patience: int = 20                  # early stopping (MG's fine-tuning uses 20-50)
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True          # channels_last_3d: ~1.3x faster training on CPU
    compile: bool = False               # torch.compile the network (after the DDP wrap)
    num_workers: int = 0
    checkpoint_every: int = 0
    cache_dir: str = ""                 # preprocessed volumes; "" = <out>/cache
    name: str = ""                      # model name in the header; "" = from the run
    allow_empty_labels: bool = False    # a labeled case whose values the rule misses trains
                                        # as tumor-free instead of stopping the run
    allow_outside_paths: bool = False   # a dataset.json may name files outside its folder

    def __post_init__(self) -> None:
        if isinstance(self.sequences, str):
            seqs = tuple(s.strip() for s in self.sequences.split(",") if s.strip())
            object.__setattr__(self, "sequences", seqs)
        for name in ("spacing", "patch_size", "flip_axes"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if not str(self.data).strip():
            raise ConfigError("data is required (an MSD dataset.json, a BraTS folder or a "
                              "CSV of image,label pairs)")
        self.classes  # noqa: B018 - parse now so a bad mapping fails at once
        self._check_numbers()
        check_choice("loss", self.loss, LOSSES)
        check_choice("amp", self.amp, ("auto", "bf16", "off"))
        if self.folds and self.trials != 1:
            raise ConfigError("give either trials or folds, not both")
        if len(self.patch_size) != 3 or any(
                not isinstance(s, int) or s < 8 or s % 8 for s in self.patch_size):
            raise ConfigError(f"patch_size must be 3 multiples of 8, not {self.patch_size!r}")
        if self.spacing and (len(self.spacing) != 3 or any(
                not isinstance(s, (int, float)) or not 0 < s < float("inf")
                for s in self.spacing)):
            raise ConfigError(f"spacing must be 3 positive numbers (mm), not {self.spacing!r}")
        if any(a not in (0, 1, 2) for a in self.flip_axes):
            raise ConfigError(f"flip_axes must be among 0, 1, 2, not {self.flip_axes!r}")
        if self.width_divisor and 32 % self.width_divisor:
            raise ConfigError(f"width_divisor must divide 32, not {self.width_divisor}")

    def _check_numbers(self) -> None:
        for name in ("trials", "epochs", "batch_size", "patches_per_case",
                     "val_patches_per_case", "plateau_patience", "patience"):
            check_positive(name, getattr(self, name), integer=True)
        for name in ("folds", "seed", "max_steps", "steps_per_epoch", "num_workers",
                     "checkpoint_every", "width_divisor"):
            _check_count(name, getattr(self, name))
        if self.folds == 1:
            raise ConfigError("folds must be 0 (no cross-validation) or at least 2")
        for name in ("include_background", "transfer_head", "channels_last", "compile",
                     "allow_empty_labels", "allow_outside_paths"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, not {getattr(self, name)!r}")
        for name in ("foreground_fraction", "flip_probability"):
            check_probability(name, getattr(self, name))
        if not 0 <= self.head_prior < 1:
            raise ConfigError(f"head_prior must be in [0, 1), not {self.head_prior!r}")
        if not 0 < self.label_fraction <= 1:
            raise ConfigError(f"label_fraction must be in (0, 1], not {self.label_fraction!r}")
        if not 0 < self.test_ratio < 1:
            raise ConfigError(f"test_ratio must be in (0, 1), not {self.test_ratio!r}")
        if not 0 <= self.val_ratio < 1:
            raise ConfigError(f"val_ratio must be in [0, 1), not {self.val_ratio!r}")
        for name in ("lr", "plateau_factor", "ce_weight"):
            check_positive(name, getattr(self, name))

    @property
    def classes(self) -> tuple[ClassSpec, ...]:
        return parse_classes(self.labels)

    @property
    def is_scratch(self) -> bool:
        return str(self.init).strip().lower() == "scratch"


#: Fields that define a run's splits, data and model; a resume must keep them.
RUN_DEFINING = ("data", "init", "sequences", "labels", "preset", "spacing", "modality",
                "label_fraction", "seed", "trials", "folds", "test_ratio", "val_ratio",
                "patch_size", "width_divisor", "loss", "include_background", "transfer_head",
                "head_prior")
