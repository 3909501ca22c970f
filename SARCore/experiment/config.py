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
        - {path: LUNA16, preset: ct, subsets: [0, 1, 2, 3, 4, 5, 6], per_volume: [16, 16, 32]}
                                  # subsets: only cases under subset<N>/ folders (LUNA16);
                                  # per_volume: this entry's cube counts (paper Table 1)
        - {path: msd/dataset.json, preset: ct, allow_outside_paths: true}
                                  # a dataset.json naming files outside its folder
                                  # (refused unless the entry allows it)
      spacing: [2, 2, 2]          # optional: overrides the presets' 1 mm
      cubes: {per_volume: [2, 2, 4]}            # CubeConfig fields
      methods: [sar, genesis, sar-large]
      options: {width_divisor: 8, max_steps: 6} # PretrainConfig/LoopConfig fields
      method_options:             # per-method overrides of options
        genesis: {restoration_weight: 1}
      variants:                   # named runs: a method with its own options (Table 3)
        sar-large: {method: sar, scales: [0]}
        genesis-mg: {method: genesis, scales: [0], cubes: {crop_rule: mg,
                                                            per_volume: [32, 0, 0]}}
    finetuning:
      inits: [sar, genesis, scratch]            # pre-trained methods and/or scratch
      label_fractions: [1.0]
      fraction_inits: [sar, scratch]            # inits that get fractions < 1 (default all)
      seeds: [0, 1]               # optional: every run once per seed (folds x seeds)
      data: brats2015             # + any FinetuneConfig field: sequences, labels, preset,
      sequences: [flair]          #   spacing, trials, folds, test_ratio, epochs, ...
    segmentation: {}              # options of the segmentation step
    evaluation: {}                # options of the evaluation step
    study:                        # optional: paired comparison + exported best model
      reference: sar              #   the init compared with each of ``against``
      against: [scratch, genesis]
      export: best.sarmodel       #   <out>/<export>: the best init's selected model
      target_dice: 0.80

``--set KEY=VALUE`` (``sar experiment``) overrides any entry by its dotted path, e.g.
``--set finetuning.max_steps=4`` or ``--set pretraining.options.max_steps=2``; the value
is read as YAML.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
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
    per_volume: tuple[int, ...] = ()  # this entry's (large, medium, small) cube counts
    subsets: tuple[int, ...] = ()     # LUNA16: only cases under these subset<N>/ folders
    allow_outside_paths: bool = False  # its dataset.json may name files outside its folder

    def __post_init__(self) -> None:
        check_choice("preset of unlabeled data", self.preset, ("ct", "mri"))
        if not isinstance(self.allow_outside_paths, bool):
            raise ConfigError(f"allow_outside_paths of {self.path} must be true or false, "
                              f"not {self.allow_outside_paths!r}")
        for name in ("per_volume", "subsets"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 0
                   for v in getattr(self, name)):
                raise ConfigError(f"{name} of {self.path} must be integers >= 0, not {value!r}")
        if self.per_volume and len(self.per_volume) != 3:
            raise ConfigError(f"per_volume of {self.path} must be 3 counts (large, medium, "
                              f"small), not {list(self.per_volume)}")

    def keeps(self, path: Path) -> bool:
        """Whether a scan at ``path`` passes the ``subsets`` selector."""
        if not self.subsets:
            return True
        wanted = {f"subset{n}" for n in self.subsets}
        return any(part.lower() in wanted for part in path.parts)


@dataclass(frozen=True)
class Pretraining:
    data: tuple[UnlabeledSource, ...] = ()
    spacing: tuple[float, ...] = ()
    cubes: Mapping[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = ("sar",)     # methods and/or variant names
    options: Mapping[str, Any] = field(default_factory=dict)
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, variant in self.variants.items():
            if name in METHODS or not isinstance(variant, Mapping) or "method" not in variant:
                raise ConfigError(f"variant {name!r} needs a new name and a 'method' "
                                  f"(one of {', '.join(METHODS)})")
            check_choice(f"method of variant {name}", variant["method"], tuple(METHODS))
        for method in self.methods:
            if method not in self.variants:
                check_choice("pre-training method", method, tuple(METHODS))
        for method in self.method_options:
            check_choice("method_options key", method, tuple(METHODS))
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"pre-training methods repeat: {list(self.methods)}")
        if self.methods and not self.data:
            raise ConfigError("pretraining.data must list at least one folder of scans")
        if "method" in self.options:
            raise ConfigError("pretraining.options must not set 'method'; list methods instead")

    def run_options(self, name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(method, options, cube overrides) of the pre-training run ``name``: the shared
        options, then the method's ``method_options``, then the variant's own."""
        variant = dict(self.variants.get(name, {}))
        method = variant.pop("method", name)
        cubes = dict(variant.pop("cubes", {}) or {})
        options = {**dict(self.options), **dict(self.method_options.get(method, {})),
                   **variant}
        return method, options, cubes


@dataclass(frozen=True)
class Finetuning:
    inits: tuple[str, ...] = ("scratch",)
    label_fractions: tuple[float, ...] = (1.0,)
    fraction_inits: tuple[str, ...] = ()   # () = every init gets every fraction
    seeds: tuple[int, ...] = ()            # () = the experiment's seed, run once
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
        if len(set(self.seeds)) != len(self.seeds) or any(
                isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ConfigError(f"finetuning.seeds must be distinct integers >= 0, not "
                              f"{self.seeds!r}")

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
    study: Mapping[str, Any] = field(default_factory=dict)  # see the module docstring

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
        study = dict(self.study)
        unknown_keys = sorted(set(study) - {"reference", "against", "export", "target_dice"})
        if unknown_keys:
            raise ConfigError(f"study has unknown option(s) {unknown_keys}",
                              hint="known: reference, against, export, target_dice")
        named = [study.get("reference", "sar"), *study.get("against", [])] if study else []
        stray = [i for i in named if i not in self.finetuning.inits]
        if stray:
            raise ConfigError(f"study compares {stray}, which finetuning.inits lacks")

    @property
    def seeds(self) -> tuple[int, ...]:
        """The fine-tuning seeds: ``finetuning.seeds`` or the experiment's one seed."""
        return tuple(self.finetuning.seeds) or (self.seed,)

    def finetune_config(self, init: str, fraction: float, data_root: Path,
                        init_path: Path | None, cache_dir: Path,
                        seed: int | None = None) -> FinetuneConfig:
        """The fine-tuning settings of one (init, label fraction) run."""
        settings = dict(self.finetuning.settings)
        # A fair comparison: scratch gets the width the methods were pre-trained at, and a
        # pre-trained model always keeps its own.
        width = settings.pop("width_divisor", None) or \
            self.pretraining.options.get("width_divisor", 1)
        if init == "scratch":
            settings["width_divisor"] = width
        if seed is not None:
            settings["seed"] = seed
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


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str],
                    source: str = "--set") -> dict[str, Any]:
    """``raw`` with each ``dotted.key=value`` of ``overrides`` set (values read as YAML)."""
    import yaml

    result = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source} {item!r} is not KEY=VALUE",
                              hint="e.g. --set finetuning.max_steps=4")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source} {item!r}: the value is not YAML ({exc})") from exc
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{source} {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read and check an experiment file (errors name the file and the option);
    ``overrides`` are ``dotted.key=value`` strings applied first (``--set``)."""
    try:
        return _load(path, overrides)
    except ConfigError as exc:
        if exc.path is not None:
            raise
        raise ConfigError(exc.problem, path, exc.hint) from exc


def _load(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    raw = apply_overrides(load_config_file(path), overrides)
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
