"""``sar pretrain CUBES --out DIR``: self-supervised pre-training on a cube store.

Options come from ``--config FILE`` (YAML/JSON, flat or with a nested ``loop:``) and
from the command line, which wins. Several processes: ``torchrun --nproc_per_node=N -m
SARCore pretrain ...`` (see docs/distributed.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from SARCore.cli.options import add_device, add_out
from SARCore.pretrain.methods import METHODS
from SARCore.progress import Reporter

HELP = "self-supervised pre-training (SAR, Models Genesis, ablations, Taleb baselines)"


#: (flag, config key, type, help). Every default is None: only given options override.
_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("--width-divisor", "width_divisor", int, "divide every U-Net width: 1 = paper, 4 or 8 "
     "for CPU runs (default: 1)"),
    ("--restoration-weight", "restoration_weight", float, "beta (default: 10, genesis 1)"),
    ("--scale-weight", "scale_weight", float, "alpha (default: 1)"),
    ("--adversarial-weight", "adversarial_weight", float, "weight of L_adv (default: 1)"),
    ("--optimizer", "optimizer", str, "auto (SGD for restoration methods, Adam for "
     "baselines), sgd or adam (default: auto)"),
    ("--lr-unet", "lr_unet", float, "U-Net learning rate (default: SGD 1.0, Adam 1e-4)"),
    ("--lr-scale", "lr_scale", float, "SA head learning rate (default: SGD 0.1)"),
    ("--lr-adversarial", "lr_adversarial", float, "MIAL discriminator learning rate "
     "(default: SGD 0.001)"),
    ("--lr-head", "lr_head", float, "baseline head learning rate (default: Adam 1e-4)"),
    ("--momentum", "momentum", float, "SGD momentum (default: 0.9)"),
    ("--val-fraction", "val_fraction", float, "share of cases held out for validation (default: 0.2)"),
    ("--name", "name", str, "model name written into the header"),
    ("--epochs", "epochs", int, "most epochs (default: 100)"),
    ("--max-steps", "max_steps", int, "stop after this many optimizer steps (default: 0, no limit)"),
    ("--steps-per-epoch", "steps_per_epoch", int, "cap on batches per epoch (default: 0, all)"),
    ("--batch-size", "batch_size", int, "cubes per optimizer step and process (default: 6)"),
    ("--patience", "patience", int, "early stopping: epochs without improvement of the "
     "validation monitor, which also picks the best model and drives the plateau: the "
     "restoration + scale terms, never the adversarial BCE (logged apart as adversarial) "
     "(default: 50)"),
    ("--plateau-patience", "plateau_patience", int, "ReduceLROnPlateau patience (default: 10)"),
    ("--plateau-factor", "plateau_factor", float, "ReduceLROnPlateau factor (default: 0.5)"),
    ("--checkpoint-every", "checkpoint_every", int, "also checkpoint every N steps (0: only "
     "at epoch ends)"),
    ("--seed", "seed", int, "random seed (default: 0)"),
    ("--amp", "amp", str, "bf16 autocast: auto (CUDA only), bf16 or off (default: auto)"),
    ("--num-workers", "num_workers", int, "DataLoader worker processes (default: 0)"),
)
_FLAGS = (("--channels-last", "channels_last", "channels_last_3d memory format (default: on)"),
          ("--compile", "compile", "torch.compile the objective"),
          ("--balance-modalities", "balance_modalities", "weight the MIAL loss so CT and MRI "
           "cubes count alike (for a CT:MRI imbalance)"),
          ("--rank-digests", "rank_digests", "debug: every DDP rank writes its weights' "
           "sha256 to OUT/rank_digests/"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--cubes", type=Path, dest="cubes", help="cube store folder (from `sar cubes`)")
    where.add_argument("cubes_dir", type=Path, nargs="?", metavar="CUBES",
                       help="the cube store folder, given without --cubes")
    add_out(parser, "output folder", type=Path)
    add_device(parser, default=None)
    parser.add_argument("--config", type=Path, help="YAML/JSON file of options")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.ckpt with the saved states")
    parser.add_argument("--method", choices=tuple(METHODS), help="pre-training method (default: sar)")
    parser.add_argument("--scales", type=int, nargs="+", metavar="S",
                        help="scale classes to train on: 0 large, 1 medium, 2 small")
    parser.add_argument("--modalities", nargs="+", metavar="M",
                        help="use only these modalities' cubes (CT, MRI)")
    for flag, dest, kind, text in _OPTIONS:
        parser.add_argument(flag, dest=dest, type=kind, help=text)
    for flag, dest, text in _FLAGS:
        parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction,
                            default=None, help=text)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line, as config keys."""
    keys = ["method", "scales", "modalities", "device", *(o[1] for o in _OPTIONS),
            *(f[1] for f in _FLAGS)]
    return {key: getattr(args, key) for key in keys if getattr(args, key) is not None}


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    from SARCore.config import load_config_file
    from SARCore.pretrain.config import config_from_mapping
    from SARCore.pretrain.runner import pretrain

    data = load_config_file(args.config) if args.config else {}
    source = str(args.config) if args.config else "command line"
    config = config_from_mapping(data, source, overrides_from_args(args))
    result = pretrain(config, args.cubes or args.cubes_dir, args.out, resume=args.resume, reporter=reporter)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    reporter.done(model=str(result.model_path), out=str(args.out),
                  wrote="model.sarmodel, metrics.csv, loss_curves.png", method=result.config.method,
                  best_val_loss=result.best_val, best_epoch=result.best_epoch,
                  epochs=result.epochs_run, global_step=result.global_step,
                  stopped_early=result.stopped_early)
    return 0
