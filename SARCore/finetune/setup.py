"""Everything a fine-tuning run decides before training: cases, model, preset, splits.

Kept apart from the training itself so the checks that refuse a run (no labels, a model
that cannot take these images, a preset for the wrong modality) happen before any
preprocessing or training time is spent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from SARCore.errors import ConfigError
from SARCore.finetune.config import FinetuneConfig
from SARCore.finetune.data import LabeledCase, find_labeled_cases
from SARCore.finetune.init import Pretrained, check_fits, load_pretrained
from SARCore.finetune.labels import ClassSpec, output_activation, output_channels
from SARCore.finetune.splits import Split, make_splits
from SARCore.io.modality import MODALITY_NAMES, modality_code
from SARCore.preprocess.presets import Preset, get_preset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPlan:
    """The resolved inputs of one ``finetune`` call."""

    cases: dict[str, LabeledCase]
    model: Pretrained | None
    preset: Preset
    modality: str
    classes: tuple[ClassSpec, ...]
    splits: tuple[Split, ...]
    width_divisor: int
    preset_reason: str = ""

    @property
    def in_channels(self) -> int:
        return len(next(iter(self.cases.values())).channels)

    @property
    def out_channels(self) -> int:
        return output_channels(self.classes)

    @property
    def activation(self) -> str:
        return output_activation(self.classes)

    def needed_cases(self) -> list[LabeledCase]:
        """Cases some split trains or validates on (test cases are never loaded)."""
        ids = sorted({c for s in self.splits for c in (*s.train, *s.validation)})
        return [self.cases[c] for c in ids]


def _modality(config: FinetuneConfig, cases: list[LabeledCase]) -> str | None:
    if config.modality:
        return MODALITY_NAMES[modality_code(config.modality)]
    found = {c.modality for c in cases if c.modality}
    if len(found) > 1:
        raise ConfigError(f"the labeled cases mix modalities ({', '.join(sorted(found))})",
                          config.data, "fine-tune one modality at a time")
    return MODALITY_NAMES[modality_code(found.pop())] if found else None


def _header_preset(model: Pretrained, modality: str | None) -> dict | None:
    """The model's preset for ``modality`` (a header may hold one per modality)."""
    found = model.header.get("preprocess")
    candidates = [found] if isinstance(found, dict) else list(found or [])
    candidates = [c for c in candidates if isinstance(c, dict)]
    matching = [c for c in candidates if not modality or c.get("modality") == modality]
    return matching[0] if matching else None


#: The preprocessing each known data layout needs (paper sec. 3.2): a BraTS folder the
#: ``brats`` z-score, MSD pancreas the pancreas window. A pre-trained model's own preset
#: is its *pre-training* min-max, which is not what the downstream task was scored with.
LAYOUT_PRESETS = {"brats": "brats", "msd-pancreas": "pancreas"}


def _layout(cases: list[LabeledCase]) -> str:
    found = {c.layout for c in cases}
    return found.pop() if len(found) == 1 else ""


def choose_preset(config: FinetuneConfig, model: Pretrained | None, modality: str | None,
                  layout: str = "") -> tuple[Preset, str]:
    """The preset of this run and why it was chosen (printed by the runner).

    ``auto``: the task's preset for a known data layout (``brats``, MSD pancreas), else
    the model header's, else the modality's pre-training preset (min-max), said so.
    """
    header_preset = _header_preset(model, modality) if model is not None else None
    if config.preset != "auto":
        preset, why = get_preset(config.preset), "named by --preset"
    elif layout in LAYOUT_PRESETS:
        preset = get_preset(LAYOUT_PRESETS[layout])
        why = f"auto: the data are {layout.replace('msd-', 'MSD ')} cases"
    elif header_preset is not None:
        preset = Preset.from_dict(header_preset)
        why = (f"auto: the model's own preprocessing (data layout {layout or 'unknown'}; "
               "name --preset brats or pancreas for those tasks)")
    elif modality:
        preset = get_preset("ct" if modality == "CT" else "mri")
        why = (f"auto: the {modality} pre-training default, min-max per volume (data layout "
               f"{layout or 'unknown'}; name --preset brats or pancreas for those tasks)")
    else:
        raise ConfigError("preset 'auto' needs a pre-trained model or a known modality",
                          config.data, "name a preset (brats, pancreas, ct, mri) or a modality")
    # Patches are padded, so small volumes are fine here (the floor is for cube crops).
    changes: dict = {"min_shape": (1, 1, 1)}
    if config.spacing:
        changes["target_spacing"] = list(config.spacing)
    preset = Preset.from_dict({**preset.to_dict(), **changes})
    if modality and preset.modality != modality:
        raise ConfigError(f"preset {preset.name!r} is meant for {preset.modality} but the "
                          f"labeled images are {modality}", config.data,
                          "choose a preset for this modality")
    return preset, why


def resolve_preset(config: FinetuneConfig, model: Pretrained | None, modality: str | None,
                   layout: str = "") -> Preset:
    """The preset of :func:`choose_preset`, without the reason."""
    return choose_preset(config, model, modality, layout)[0]


def _width_divisor(config: FinetuneConfig, model: Pretrained | None) -> int:
    if model is None:
        return config.width_divisor or 1
    own = int(model.header["width_divisor"])
    if config.width_divisor and config.width_divisor != own:
        raise ConfigError(f"width_divisor {config.width_divisor} applies to scratch only; "
                          f"the model {model.path.name} has width_divisor {own}")
    return own


def plan_run(config: FinetuneConfig) -> RunPlan:
    """Find the cases, read the model, check they fit, pick the preset, split the cases."""
    cases = find_labeled_cases(config.data, config.sequences, config.modality or None,
                               config.allow_outside_paths)
    model = None if config.is_scratch else load_pretrained(Path(config.init).expanduser())
    modality = _modality(config, cases)
    preset, why = choose_preset(config, model, modality, _layout(cases))
    modality = modality or preset.modality
    if model is not None:
        check_fits(model, len(cases[0].channels), modality, config.sequences)
    splits = make_splits([c.case_id for c in cases], trials=config.trials, folds=config.folds,
                         seed=config.seed, test_ratio=config.test_ratio,
                         label_fraction=config.label_fraction, val_ratio=config.val_ratio)
    return RunPlan({c.case_id: c for c in cases}, model, preset, modality, config.classes,
                   tuple(splits), _width_divisor(config, model), why)
