"""Pre-training settings: one frozen dataclass, from the CLI and/or a YAML/JSON file.

Loop settings (epochs, batch size, patience, checkpointing, device, amp...) live in a
nested :class:`~SARCore.training.LoopConfig`; files and the CLI may give them flat
(``epochs: 10``) or nested (``loop: {epochs: 10}``). Method-dependent defaults (loss
weight, optimizer, learning rates) are ``None`` until :meth:`PretrainConfig.resolved`
fills them, and the resolved config is what ``<out>/config.json`` records, so a run can
be repeated from it: ``sar pretrain CUBES --config <out>/config.json``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from SARCore.config import check_choice, check_positive, from_mapping, to_dict
from SARCore.corruptions.config import CorruptionConfig
from SARCore.errors import ConfigError
from SARCore.io.modality import MODALITY_NAMES, modality_code
from SARCore.pretrain.methods import DEFAULT_LEARNING_RATES, METHODS, MethodSpec
from SARCore.training import LoopConfig

SCALE_NAMES = {0: "large", 1: "medium", 2: "small"}
OPTIMIZERS = ("auto", "sgd", "adam")
LEARNING_RATES = ("lr_unet", "lr_scale", "lr_adversarial", "lr_head")
LOOP_FIELDS = tuple(f.name for f in dataclasses.fields(LoopConfig))


#: Loop defaults that differ for pre-training. channels_last_3d: fp32 3D convolutions on
#: CPU ran 1.5x faster with it (bench/RESULTS.md) and it is cuDNN's preferred layout for
#: bf16. bf16 autocast stays CUDA-only ("auto"): on CPUs without native bf16 (AVX2) it
#: was many times slower.
PRETRAIN_LOOP_DEFAULTS: dict[str, Any] = {"channels_last": True}


def _default_loop() -> LoopConfig:
    return LoopConfig(**PRETRAIN_LOOP_DEFAULTS)


@dataclass(frozen=True)
class PretrainConfig:
    """Everything a pre-training run needs besides the cube folder and output folder."""

    method: str = "sar"
    scales: tuple[int, ...] = (0, 1, 2)        # Table 3 ablations: (0,), (1,) or (2,)
    modalities: tuple[str, ...] = ()           # () = every modality in the cube store
    width_divisor: int = 1                     # 1 = paper width; 4 or 8 for CPU demos
    restoration_weight: float | None = None    # beta; None: 10 (SAR family) or 1 (genesis)
    scale_weight: float = 1.0                  # alpha
    adversarial_weight: float = 1.0
    optimizer: str = "auto"                    # auto: SGD (restoration) or Adam (baselines)
    lr_unet: float | None = None
    lr_scale: float | None = None
    lr_adversarial: float | None = None
    lr_head: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    val_fraction: float = 0.2                  # share of cases held out for validation
    balance_modalities: bool = False           # MIAL BCE weighted so CT and MRI count alike
    corruption: Mapping[str, Any] = field(default_factory=dict)  # ModelsGenesis options
    name: str = ""                             # model name in the header ("" -> method)
    rank_digests: bool = False                 # debug: each DDP rank writes its weights' hash
    loop: LoopConfig = field(default_factory=_default_loop)

    def __post_init__(self) -> None:
        check_choice("method", self.method, tuple(METHODS))
        self._check_scales()
        object.__setattr__(self, "modalities", tuple(
            MODALITY_NAMES[modality_code(m)] for m in _as_tuple("modalities", self.modalities)))
        if len(set(self.modalities)) != len(self.modalities):
            raise ConfigError(f"modalities lists a modality twice: {self.modalities!r}")
        check_positive("width_divisor", self.width_divisor, integer=True)
        if 32 % self.width_divisor:
            raise ConfigError(f"width_divisor must divide 32 (1, 2, 4, 8, 16, 32), not "
                              f"{self.width_divisor!r}")
        for name in ("restoration_weight", *LEARNING_RATES):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        for name in ("scale_weight", "adversarial_weight", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0, not {value!r}")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if (isinstance(self.momentum, bool) or not isinstance(self.momentum, (int, float))
                or not 0.0 <= self.momentum < 1.0):
            raise ConfigError(f"momentum must be a number in [0, 1), not {self.momentum!r}")
        if (isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, (int, float))
                or not 0.0 <= self.val_fraction < 1.0):
            raise ConfigError(f"val_fraction must be a number in [0, 1), not "
                              f"{self.val_fraction!r}")
        if not isinstance(self.corruption, Mapping):
            raise ConfigError(f"corruption must be a mapping of corruption options, not "
                              f"{self.corruption!r}")
        corruption_config(self.corruption)  # refuse bad options now, not at the first step
        if not isinstance(self.loop, LoopConfig):
            raise ConfigError(f"loop must be loop settings, not {self.loop!r}")
        if not isinstance(self.balance_modalities, bool):
            raise ConfigError(f"balance_modalities must be true or false, not "
                              f"{self.balance_modalities!r}")
        if not isinstance(self.name, str):
            raise ConfigError(f"name must be text, not {self.name!r}")

    def _check_scales(self) -> None:
        scales = _as_tuple("scales", self.scales)
        if not scales or any(isinstance(s, bool) or s not in SCALE_NAMES for s in scales):
            raise ConfigError(f"scales must be one or more of 0 (large), 1 (medium), "
                              f"2 (small), not {self.scales!r}")
        if len(set(scales)) != len(scales):
            raise ConfigError(f"scales lists a scale twice: {self.scales!r}")
        object.__setattr__(self, "scales", tuple(sorted(scales)))

    @property
    def spec(self) -> MethodSpec:
        return METHODS[self.method]

    def resolved(self) -> PretrainConfig:
        """A copy with every method-dependent default filled in."""
        spec = METHODS[self.method]
        optimizer = spec.default_optimizer if self.optimizer == "auto" else self.optimizer
        rates = {name: (getattr(self, name) if getattr(self, name) is not None
                        else DEFAULT_LEARNING_RATES[optimizer][name]) for name in LEARNING_RATES}
        weight = (self.restoration_weight if self.restoration_weight is not None
                  else spec.restoration_weight)
        return dataclasses.replace(self, optimizer=optimizer, restoration_weight=weight,
                                   name=self.name or f"{self.method}-pretrained", **rates)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested ``loop``), readable again by :func:`config_from_mapping`."""
        data = to_dict(self)
        data["corruption"] = dict(self.corruption)
        return data


def corruption_config(options: Mapping[str, Any]) -> CorruptionConfig:
    """Models Genesis settings: MG's defaults with ``options`` (a config's ``corruption``)."""
    try:
        return from_mapping(CorruptionConfig, dict(options))
    except ConfigError as exc:
        raise ConfigError(f"corruption: {exc.problem}", hint=exc.hint) from exc


def _as_tuple(name: str, value: Any) -> tuple:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise ConfigError(f"{name} must be a list, not {value!r}")


def config_from_mapping(data: Mapping[str, Any], source: str = "config",
                        overrides: Mapping[str, Any] | None = None) -> PretrainConfig:
    """Build a :class:`PretrainConfig` from flat or nested options; ``overrides`` win.

    ``overrides`` are flat (CLI options); ``None`` values in them are ignored.
    """
    data = dict(data)
    loop_data = data.pop("loop", None) or {}
    if not isinstance(loop_data, Mapping):
        raise ConfigError("loop must be a mapping of loop options", source)
    loop_data = {**PRETRAIN_LOOP_DEFAULTS, **loop_data}
    known = [f.name for f in dataclasses.fields(PretrainConfig) if f.name != "loop"]
    merged = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    top: dict[str, Any] = {}
    for key, value in merged.items():
        if key in LOOP_FIELDS:
            loop_data[key] = value
        elif key in known:
            top[key] = value
        else:
            close = difflib.get_close_matches(key, known + list(LOOP_FIELDS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
            raise ConfigError(f"unknown option {key!r}", source, hint)
    try:
        loop = from_mapping(LoopConfig, loop_data, source)
        return from_mapping(PretrainConfig, {**top, "loop": loop}, source)
    except ConfigError as exc:
        if exc.path is None:  # a value check: say which file it came from
            raise ConfigError(exc.problem, source, exc.hint) from exc
        raise
