"""One experiment file: unlabeled data -> pre-training methods -> fine-tuning protocol.

YAML layout (every path is relative to ``--data-root``; see ``experiments/*.yaml``)::

    name: mini
    toy_run: true                 # the report then says the numbers are from a toy run
    description: ...
    seed: 0
    device: auto
    cpu_threads: 0                # torch threads on CPU; 0 = torch's default
    output: runs/mini             # default output folder (``--out`` wins)
    pretraining:
      data:                       # unlabeled scans, one preset each (ct | mri)
        - {path: ct, preset: ct}
        - {path: brats_4seq, preset: mri, sequence: all}
      spacing: [2, 2, 2]          # optional: overrides the presets' 1 mm
      cubes: {per_volume: [2, 2, 4]}            # CubeConfig fields
      methods: [sar, genesis]
      options: {width_divisor: 8, max_steps: 6} # PretrainConfig/LoopConfig fields
    finetuning:
      inits: [sar, genesis, scratch]            # pre-trained methods and/or scratch
      label_fractions: [1.0]
      fraction_inits: [sar, scratch]            # inits that get fractions < 1 (default all)
      data: brats2015             # + any FinetuneConfig field: sequences, labels, preset,
      sequences: [flair]          #   spacing, trials, folds, test_ratio, epochs, ...
    segmentation: {}              # options of the segmentation step
    evaluation: {}                # options of the evaluation step
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SARCore.config import check_choice, from_mapping, load_config_file
from SARCore.errors import ConfigError
from SARCore.finetune.config import FinetuneConfig
from SARCore.pretrain.methods import METHODS

#: FinetuneConfig fields the runner sets itself, per stage.
RUNNER_SET = ("init", "label_fraction", "cache_dir", "name")


@dataclass(frozen=True)
class UnlabeledSource:
    """One folder (or file) of unlabeled scans and the preset that prepares it."""

    path: str
    preset: str = "ct"
    modality: str = ""      # "" = from the data layout or the preset
    sequence: str = "all"   # BraTS folders: every sequence is a volume (paper Table 1)

    def __post_init__(self) -> None:
        check_choice("preset of unlabeled data", self.preset, ("ct", "mri"))


@dataclass(frozen=True)
class Pretraining:
    data: tuple[UnlabeledSource, ...] = ()
    spacing: tuple[float, ...] = ()
    cubes: Mapping[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = ("sar",)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for method in self.methods:
            check_choice("pre-training method", method, tuple(METHODS))
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"pre-training methods repeat: {list(self.methods)}")
        if self.methods and not self.data:
            raise ConfigError("pretraining.data must list at least one folder of scans")
        if "method" in self.options:
            raise ConfigError("pretraining.options must not set 'method'; list methods instead")


@dataclass(frozen=True)
class Finetuning:
    inits: tuple[str, ...] = ("scratch",)
    label_fractions: tuple[float, ...] = (1.0,)
    fraction_inits: tuple[str, ...] = ()   # () = every init gets every fraction
    settings: Mapping[str, Any] = field(default_factory=dict)  # FinetuneConfig fields

    def __post_init__(self) -> None:
        if not self.inits or len(set(self.inits)) != len(self.inits):
            raise ConfigError(f"finetuning.inits must name distinct inits, not {self.inits!r}")
        stray = [i for i in self.fraction_inits if i not in self.inits]
        if stray:
            raise ConfigError(f"finetuning.fraction_inits {stray} are not among the inits")
        if not self.label_fractions or any(
                isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1
                for f in self.label_fractions):
            raise ConfigError(f"label_fractions must be numbers in (0, 1], not "
                              f"{self.label_fractions!r}")

    def runs(self) -> list[tuple[str, float]]:
        """(init, fraction) pairs in report order: all inits at 1.0 first."""
        fractions = sorted(set(self.label_fractions), reverse=True)
        pairs = []
        for fraction in fractions:
            for init in self.inits:
                if fraction == 1.0 or not self.fraction_inits or init in self.fraction_inits:
                    pairs.append((init, fraction))
        return pairs


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    pretraining: Pretraining
    finetuning: Finetuning
    description: str = ""
    toy_run: bool = False
    seed: int = 0
    device: str = "auto"
    cpu_threads: int = 0    # torch CPU threads (0 = torch's default); the CLI applies it
    output: str = ""
    segmentation: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.cpu_threads, bool) or not isinstance(self.cpu_threads, int) \
                or self.cpu_threads < 0:
            raise ConfigError(f"cpu_threads must be a non-negative integer, not "
                              f"{self.cpu_threads!r}")
        unknown = [i for i in self.finetuning.inits
                   if i != "scratch" and i not in self.pretraining.methods]
        if unknown:
            raise ConfigError(f"finetuning.inits {unknown} are not pre-trained here",
                              hint=f"add them to pretraining.methods "
                                   f"({', '.join(self.pretraining.methods) or 'none'}) or "
                                   "use 'scratch'")

    def finetune_config(self, init: str, fraction: float, data_root: Path,
                        init_path: Path | None, cache_dir: Path) -> FinetuneConfig:
        """The fine-tuning settings of one (init, label fraction) run."""
        settings = dict(self.finetuning.settings)
        # A fair comparison: scratch gets the width the methods were pre-trained at, and a
        # pre-trained model always keeps its own.
        width = settings.pop("width_divisor", None) or \
            self.pretraining.options.get("width_divisor", 1)
        if init == "scratch":
            settings["width_divisor"] = width
        settings.setdefault("seed", self.seed)
        settings.setdefault("device", self.device)
        settings["data"] = str(resolve(data_root, settings.get("data", "")))
        settings.update(init=str(init_path) if init_path else "scratch",
                        label_fraction=fraction, cache_dir=str(cache_dir),
                        name=f"{self.name}-{init}-{fraction_label(fraction)}")
        return from_mapping(FinetuneConfig, settings, source="finetuning")


def fraction_label(fraction: float) -> str:
    """1.0 -> ``all``; 0.2 -> ``1_5``; 0.3 -> ``0.3`` (folder names and table columns)."""
    if fraction == 1.0:
        return "all"
    inverse = 1 / fraction
    return f"1_{round(inverse)}" if abs(inverse - round(inverse)) < 1e-6 else f"{fraction:g}"


def resolve(root: Path, path: str | Path) -> Path:
    """``path`` relative to the data root (absolute paths stay as they are)."""
    return (root / Path(path).expanduser()).resolve()


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping")
    return dict(value)


def _pretraining(data: dict[str, Any], source: str) -> Pretraining:
    sources = data.pop("data", []) or []
    if not isinstance(sources, list):
        raise ConfigError("pretraining.data must be a list of {path, preset}", source)
    items = tuple(from_mapping(UnlabeledSource, s if isinstance(s, Mapping) else {"path": s},
                               source=f"{source}: pretraining.data") for s in sources)
    return from_mapping(Pretraining, {**data, "data": items}, source=f"{source}: pretraining")


def _finetuning(data: dict[str, Any], source: str) -> Finetuning:
    own = {f.name for f in dataclasses.fields(Finetuning)} - {"settings"}
    mine = {k: data.pop(k) for k in list(data) if k in own}
    set_here = [k for k in data if k in RUNNER_SET]
    if set_here:
        raise ConfigError(f"finetuning must not set {', '.join(set_here)}: the runner sets "
                          "them per run (use inits and label_fractions)", source)
    if not data.get("data"):
        raise ConfigError("finetuning.data must name the labeled data", source)
    probe = {**data, "data": "probe"}
    from_mapping(FinetuneConfig, probe, source=f"{source}: finetuning")  # fail early
    return from_mapping(Finetuning, {**mine, "settings": data}, source=f"{source}: finetuning")


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and check an experiment file (errors name the file and the option)."""
    try:
        return _load(path)
    except ConfigError as exc:
        if exc.path is not None:
            raise
        raise ConfigError(exc.problem, path, exc.hint) from exc


def _load(path: str | Path) -> ExperimentConfig:
    raw = load_config_file(path)
    source = str(path)
    top = dict(raw)
    pretraining = _pretraining(_section(top, "pretraining"), source)
    finetuning = _finetuning(_section(top, "finetuning"), source)
    top.pop("pretraining", None)
    top.pop("finetuning", None)
    if "name" not in top:
        top["name"] = Path(path).stem
    config = from_mapping(ExperimentConfig, {**top, "pretraining": pretraining,
                                             "finetuning": finetuning}, source=source)
    from SARCore.experiment.validate import validate_experiment

    validate_experiment(config)  # every section now, not when its stage comes
    return config
