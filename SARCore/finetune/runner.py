"""``finetune(config, out_dir)``: every trial or fold of one fine-tuning run.

Output folder::

    <out>/config.json            effective config + resolved preset/modality
    <out>/splits.json            every trial's/fold's train/validation/test case ids
    <out>/cache/<preset-hash>/   preprocessed volumes (.nii.gz), unless cache_dir is set
    <out>/trial_0/ (or fold_0/)  split.json (test cases with their files), last.ckpt,
                                 metrics.csv, loss_curves.png, model.sarmodel, done.json
    <out>/model.sarmodel         the split with the lowest validation loss (a copy)
    <out>/finetune_result.json   the summary; its presence means "done"

Validation (ReduceLROnPlateau, early stopping, best model) uses fixed patches of the
held-out labeled cases, or of the training case when only one labeled case exists; the
test cases are never loaded here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from SARCore.atomic import remove_stale_temporaries, write_json_atomic
from SARCore.config import to_dict
from SARCore.errors import ConfigError
from SARCore.finetune.config import RUN_DEFINING, FinetuneConfig
from SARCore.finetune.data import cache_folder, load_volumes
from SARCore.finetune.header import segmentation_header
from SARCore.finetune.init import build_network
from SARCore.finetune.objective import SegmentationObjective
from SARCore.finetune.patches import PatchDataset, Volume
from SARCore.finetune.setup import RunPlan, plan_run
from SARCore.finetune.splits import Split
from SARCore.losses.dice import SegmentationLoss
from SARCore.models.modelfile import load_model_file, save_model_file
from SARCore.progress import NullReporter, Reporter
from SARCore.training.device import resolve_device
from SARCore.training.distributed import DistInfo, on_main, process_group
from SARCore.training.loop import LoopConfig, train

log = logging.getLogger(__name__)

MODEL_NAME = "model.sarmodel"
RESULT_NAME = "finetune_result.json"


@dataclass
class SplitResult:
    """One trial's or fold's outcome (``done.json`` in its folder)."""

    name: str
    model_path: str
    best_val_loss: float
    best_epoch: int
    epochs: int
    steps: int
    stopped_early: bool
    train: list[str]
    validation: list[str]
    test: list[str]


@dataclass
class FinetuneResult:
    """What a fine-tuning run produced (``finetune_result.json``)."""

    out_dir: str
    model_path: str
    selected_split: str
    splits: list[SplitResult]
    test_cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> files

    @classmethod
    def load(cls, path: str | Path) -> FinetuneResult:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data["splits"] = [SplitResult(**s) for s in data["splits"]]
        return cls(**data)


def _check_out_dir(out: Path, config: FinetuneConfig, resume: bool) -> bool:
    """True when an earlier run is there to continue; refuses to mix two runs."""
    stored = out / "config.json"
    if not stored.is_file():
        return False
    if not resume:
        raise ConfigError("folder already holds a fine-tuning run", out,
                          "add --resume to continue it, or choose another --out")
    old = json.loads(stored.read_text(encoding="utf-8"))["config"]
    new = to_dict(config)
    changed = [k for k in RUN_DEFINING if old.get(k) != new.get(k)]
    if changed:
        raise ConfigError(f"cannot resume: {', '.join(changed)} differ from the run in this "
                          "folder", out, "use the same settings, or another --out")
    return True


def _loop_config(config: FinetuneConfig, seed: int) -> LoopConfig:
    return LoopConfig(epochs=config.epochs, max_steps=config.max_steps,
                      steps_per_epoch=config.steps_per_epoch, batch_size=config.batch_size,
                      patience=config.patience, plateau_patience=config.plateau_patience,
                      plateau_factor=config.plateau_factor, checkpoint_every=config.checkpoint_every,
                      seed=seed, device=config.device, amp=config.amp,
                      channels_last=config.channels_last, compile=config.compile,
                      num_workers=config.num_workers)


def _datasets(config: FinetuneConfig, split: Split,
              volumes: dict[str, Volume]) -> tuple[PatchDataset, PatchDataset]:
    train_set = PatchDataset([volumes[c] for c in split.train], config.patch_size,
                             config.patches_per_case, config.foreground_fraction,
                             config.flip_probability, config.flip_axes, seed=split.seed)
    held_out = split.validation or split.train
    val_set = PatchDataset([volumes[c] for c in held_out], config.patch_size,
                           config.val_patches_per_case, config.foreground_fraction,
                           seed=split.seed + 1, fixed=True)
    return train_set, val_set


def _write_split_file(folder: Path, split: Split, plan: RunPlan) -> None:
    data = split.to_dict()
    data["test_cases"] = [plan.cases[c].to_dict() for c in split.test]
    write_json_atomic(folder / "split.json", data)


def _prepare_split(folder: Path, split: Split, plan: RunPlan) -> dict[str, Any] | None:
    """Rank 0's part before a split trains: its ``done.json`` if finished, else a clean
    folder with ``split.json``."""
    if (folder / "done.json").is_file():
        return dict(json.loads((folder / "done.json").read_text(encoding="utf-8")))
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    _write_split_file(folder, split, plan)
    return None


def _run_split(config: FinetuneConfig, plan: RunPlan, split: Split, out: Path, name: str,
               volumes: dict[str, Volume], resume: bool, reporter: Reporter,
               info: DistInfo) -> SplitResult:
    folder = out / split.name
    finished = on_main(info, lambda: _prepare_split(folder, split, plan),
                       f"preparing {folder}")
    if finished is not None:
        return SplitResult(**finished)
    resuming = on_main(info, lambda: resume and (folder / "last.ckpt").is_file(),
                     f"looking for {folder / 'last.ckpt'}")
    torch.manual_seed(split.seed)  # the random decoder/head of this split
    net, init_fields = build_network(plan.in_channels, plan.out_channels, plan.width_divisor,
                                     plan.model, config.transfer_head, plan.activation,
                                     config.head_prior)
    loss = SegmentationLoss(plan.activation, config.include_background,
                            config.ce_weight if config.loss == "dice_ce" else 0.0)
    objective = SegmentationObjective(net, loss)

    def save(model: torch.nn.Module, row: dict[str, Any]) -> None:
        training = {"epochs": row.get("epoch"), "best_epoch": row.get("epoch"),
                    "best_val_loss": row.get("val_loss")}
        header = segmentation_header(config, name=f"{name}-{split.name}", classes=plan.classes,
                                     preset=plan.preset, modality=plan.modality, net=net,
                                     split=split, split_seed=split.seed,
                                     init_fields=init_fields, training=training)
        state = {k: v for k, v in model.state_dict().items() if k.startswith("unet.")}
        save_model_file(folder / MODEL_NAME, state, header)

    train_set, val_set = _datasets(config, split, volumes)
    result = train(objective, lambda m: torch.optim.Adam(m.parameters(), lr=config.lr),
                   train_set, val_set, folder, _loop_config(config, split.seed),
                   resume=resuming, save_best=save, reporter=reporter,
                   stage=f"finetune {split.name}")
    done = SplitResult(split.name, str(folder / MODEL_NAME), float(result.best_val),
                       int(result.best_epoch), int(result.epochs_run), int(result.global_step),
                       bool(result.stopped_early), list(split.train), list(split.validation),
                       list(split.test))

    def finish() -> None:
        if not (folder / MODEL_NAME).is_file():  # validation never improved (e.g. NaN)
            save(objective, {"epoch": result.epochs_run, "val_loss": None})
        write_json_atomic(folder / "done.json", asdict(done))
    on_main(info, finish, f"finishing {folder}")
    return done


def _select_model(results: list[SplitResult], out: Path) -> SplitResult:
    """Copy the split with the lowest validation loss to ``<out>/model.sarmodel``."""
    best = min(results, key=lambda r: (r.best_val_loss, r.name))
    header, state = load_model_file(best.model_path)
    header = {**header, "selected_split": best.name,
              "split_models": [str(Path(r.model_path).relative_to(out)) for r in results]}
    header.pop("weights_sha256", None)
    save_model_file(out / MODEL_NAME, state, header)
    return best


def _prepare(config: FinetuneConfig, out: Path, resume: bool, reporter: Reporter,
             kept: dict[str, Any]) -> tuple[bool, FinetuneResult | None]:
    """Rank 0's part before training: check the folder, write ``config.json`` and
    ``splits.json``, fill the volume cache (plan and volumes go to ``kept``). Returns
    whether an earlier run continues, and its result when it is already complete."""
    continuing = _check_out_dir(out, config, resume)
    if continuing and (out / RESULT_NAME).is_file():
        reporter.log(f"fine-tuning in {out} is already complete")
        return True, FinetuneResult.load(out / RESULT_NAME)
    kept["plan"] = plan = plan_run(config)
    reporter.log(f"preprocessing: preset {plan.preset.name} ({plan.preset.normalization}; "
                 f"{plan.preset_reason})")
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    write_json_atomic(out / "config.json", {
        "config": to_dict(config), "preset": plan.preset.to_dict(),
        "preset_reason": plan.preset_reason, "modality": plan.modality,
        "classes": [c.to_header() for c in plan.classes], "output_activation": plan.activation,
        "in_channels": plan.in_channels, "width_divisor": plan.width_divisor})
    write_json_atomic(out / "splits.json", [s.to_dict() for s in plan.splits])
    kept["volumes"] = _load_volumes(config, plan, out, reporter)
    return continuing, None


def _load_volumes(config: FinetuneConfig, plan: RunPlan, out: Path,
                  reporter: Reporter) -> dict[str, Volume]:
    cache_root = Path(config.cache_dir) if config.cache_dir else out / "cache"
    folder = cache_folder(cache_root, plan.preset, plan.classes, config.sequences)
    return load_volumes(plan.needed_cases(), plan.preset, plan.classes, folder, reporter,
                        allow_empty=config.allow_empty_labels)


def _finish(config: FinetuneConfig, plan: RunPlan, out: Path,
            results: list[SplitResult]) -> FinetuneResult:
    best = _select_model(results, out)
    test_cases = {c: plan.cases[c].to_dict() for s in plan.splits for c in s.test}
    final = FinetuneResult(str(out), str(out / MODEL_NAME), best.name, results, test_cases)
    write_json_atomic(out / RESULT_NAME, asdict(final))
    return final


def finetune(config: FinetuneConfig, out_dir: str | Path, resume: bool = False,
             reporter: Reporter | None = None) -> FinetuneResult:
    """Fine-tune every trial/fold of ``config`` into ``out_dir`` (see the module docstring).

    Under ``torchrun`` every process trains its share of each batch; process 0 alone
    checks and writes the output folder (the others wait for it, then read the volume
    cache it filled) and reports progress.
    """
    out = Path(out_dir)
    with process_group(resolve_device(config.device)) as (info, _):
        reporter = reporter if reporter is not None and info.is_main else NullReporter()
        kept: dict[str, Any] = {}
        continuing, complete = on_main(
            info, lambda: _prepare(config, out, resume, reporter, kept), f"preparing {out}")
        if complete is not None:
            reporter.log(f"fine-tuning in {out} is already complete")
            return complete
        plan = kept["plan"] if "plan" in kept else plan_run(config)
        volumes = (kept["volumes"] if "volumes" in kept  # other ranks read rank 0's cache
                   else _load_volumes(config, plan, out, reporter))
        name = config.name or out.name
        results = [_run_split(config, plan, split, out, name, volumes, continuing, reporter,
                              info) for split in plan.splits]
        return on_main(info, lambda: _finish(config, plan, out, results), f"finishing {out}")
