"""``pretrain(config, cubes_dir, out_dir)``: cubes -> objective -> loop -> model file.

Files in ``out_dir`` (rank 0 writes them all, each atomically)::

    config.json        the effective (resolved) settings; re-usable as --config
    last.ckpt          the loop's crash-safe checkpoint (every epoch / every N steps)
    model.sarmodel     best weights by the validation monitor (restoration + scale terms,
                       never the adversarial BCE the encoder is trained to raise)
    metrics.csv        every loss term and accuracy per epoch, train_ and val_
    loss_curves.png    the same as plots
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from SARCore.atomic import remove_stale_temporaries, write_json_atomic
from SARCore.config import load_config_file
from SARCore.errors import CheckpointError, ConfigError, ModelFileError
from SARCore.models.modelfile import load_model_file, save_model_file, weights_digest
from SARCore.pretrain.config import PretrainConfig, config_from_mapping
from SARCore.pretrain.data import CubeSets, load_cube_sets
from SARCore.pretrain.methods import active_terms
from SARCore.pretrain.objectives import PretrainObjective
from SARCore.progress import NullReporter, Reporter
from SARCore.training import TrainResult, train
from SARCore.training.checkpoint import CHECKPOINT_NAME
from SARCore.training.device import resolve_device
from SARCore.training.distributed import DistInfo, on_main, process_group

log = logging.getLogger(__name__)

MODEL_NAME = "model.sarmodel"
CONFIG_NAME = "config.json"
#: Settings a resumed run must share with the run that wrote the checkpoint.
RESUME_FIXED = ("method", "scales", "modalities", "width_divisor")


@dataclass
class PretrainResult(TrainResult):
    """The loop's result plus the model file it produced and the effective settings.

    The defaults exist only because Python 3.9 (Slicer 5.8) has no ``kw_only``
    dataclasses and a base class with defaults needs them; :func:`pretrain` sets both.
    """

    model_path: Path = Path(MODEL_NAME)
    config: PretrainConfig = field(default_factory=PretrainConfig)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def make_optimizer(objective: PretrainObjective, config: PretrainConfig) -> torch.optim.Optimizer:
    """One optimizer whose parameter groups carry the per-module learning rates."""
    config = config.resolved()
    groups = objective.param_groups(config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr_unet, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(groups, lr=config.lr_unet, weight_decay=config.weight_decay)


def model_header(config: PretrainConfig, data: CubeSets, **fields: Any) -> dict[str, Any]:
    """Header fields of a pre-trained model file (see :mod:`SARCore.models.modelfile`)."""
    spec = config.spec
    return {"name": config.name, "task": "pretrain", "architecture": "mg_unet3d",
            "width_divisor": config.width_divisor, "in_channels": 1, "out_channels": 1,
            "input_size": list(data.cube_size), "method": config.method,
            "losses": list(active_terms(spec, len(config.scales))),
            "scales": list(config.scales), "modalities": list(data.modalities),
            "preprocess": data.preprocess, "n_cubes": data.n_cubes,
            "n_train_cubes": len(data.train), "n_val_cubes": len(data.val or []),
            "encoder_only": spec.encoder_only, "optimizer": config.optimizer, **fields}


def _check_resume(out_dir: Path, config: PretrainConfig) -> None:
    previous_path = out_dir / CONFIG_NAME
    if not (out_dir / CHECKPOINT_NAME).is_file():
        raise CheckpointError("no checkpoint to resume from", out_dir / CHECKPOINT_NAME,
                              "start without --resume, or point --out at the earlier run")
    if not previous_path.is_file():
        return
    previous = config_from_mapping(load_config_file(previous_path), str(previous_path))
    changed = [name for name in RESUME_FIXED if getattr(previous, name) != getattr(config, name)]
    if changed:
        raise CheckpointError(
            "cannot resume with different " + ", ".join(
                f"{name} ({getattr(previous, name)!r} -> {getattr(config, name)!r})"
                for name in changed), previous_path, "use the earlier settings or a new --out")


def _prepare_out_dir(out_dir: Path, config: PretrainConfig, resume: bool) -> None:
    """Check and prepare the output folder (rank 0 only, see ``on_main``)."""
    if resume:
        _check_resume(out_dir, config)
    elif (out_dir / CHECKPOINT_NAME).is_file():
        raise ConfigError("an earlier run's checkpoint is in the output folder", out_dir,
                          "add --resume to continue it, or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    write_json_atomic(out_dir / CONFIG_NAME, config.to_dict())


def _finish_model_file(path: Path, result_fields: dict[str, Any]) -> None:
    """Add the run's final numbers to the best model's header (weights unchanged)."""
    header, state = load_model_file(path)
    header.pop("weights_sha256", None)
    save_model_file(path, state, {**header, **result_fields})


def _write_rank_digest(out_dir: Path, objective: nn.Module, global_step: int) -> None:
    """Debug aid for DDP tests: this rank's weights hash (all ranks must agree)."""
    rank, world = _rank(), int(os.environ.get("WORLD_SIZE", "1"))
    write_json_atomic(out_dir / "rank_digests" / f"rank{rank}.json",
                      {"rank": rank, "world_size": world, "global_step": global_step,
                       "weights_sha256": weights_digest(objective.state_dict())})


def pretrain(config: PretrainConfig, cubes_dir: str | Path, out_dir: str | Path,
             resume: bool = False, reporter: Reporter | None = None) -> PretrainResult:
    """Pre-train ``config.method`` on the cube store ``cubes_dir``; outputs in ``out_dir``."""
    config, out_dir = config.resolved(), Path(out_dir)
    with process_group(resolve_device(config.loop.device)) as (info, _):
        data = load_cube_sets(config, cubes_dir)
        on_main(info, lambda: _prepare_out_dir(out_dir, config, resume),
                f"preparing {out_dir}")
        return _pretrain(config, data, out_dir, resume, reporter, info)


def _pretrain(config: PretrainConfig, data: CubeSets, out_dir: Path, resume: bool,
              reporter: Reporter | None, info: DistInfo) -> PretrainResult:
    reporter = reporter if reporter is not None and info.is_main else NullReporter()
    torch.manual_seed(config.loop.seed)  # the initial weights depend on the seed only
    objective = PretrainObjective(config)
    if objective.discriminator is not None:
        codes = data.train.modalities
        weight = objective.set_modality_counts(int((codes == 0).sum()), int((codes == 1).sum()))
        if config.balance_modalities:
            reporter.log(f"modality loss balanced: CT cubes weigh {weight:.3g}")
    model_path = out_dir / MODEL_NAME

    def save_best(best: nn.Module, row: dict[str, Any]) -> None:
        val_loss = row.get("val_monitor", row.get("val_loss", row.get("train_loss")))
        header = model_header(config, data, epochs=row["epoch"], best_epoch=row["epoch"],
                              global_step=row["step"], val_loss=val_loss)
        save_model_file(model_path, best.model_state_dict(), header)  # type: ignore[operator]

    reporter.log(f"pretrain {config.method}: {', '.join(objective.terms)} on "
                 f"{len(data.train)} training and {len(data.val or [])} validation cubes "
                 f"({', '.join(data.modalities)})")
    result = train(objective, lambda module: make_optimizer(module, config), data.train,
                   data.val, out_dir, config.loop, resume=resume, save_best=save_best,
                   reporter=reporter, stage="pretrain")
    if config.rank_digests:
        _write_rank_digest(out_dir, objective, result.global_step)

    def finish() -> None:
        if not model_path.is_file():
            raise ModelFileError("training ended without a model file", model_path)
        _finish_model_file(model_path, {"epochs": result.epochs_run,
                                        "best_epoch": result.best_epoch,
                                        "val_loss": result.best_val,
                                        "final_global_step": result.global_step})
    on_main(info, finish, f"finishing {model_path}")
    return PretrainResult(**vars(result), model_path=model_path, config=config)
