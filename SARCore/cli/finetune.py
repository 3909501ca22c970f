"""``sar finetune``: fine-tune a segmentation model from a pre-trained model or scratch."""

from __future__ import annotations

import argparse
import os
from typing import Any

from SARCore.cli.options import (
    add_allow_outside_paths,
    add_device,
    add_labels,
    add_out,
    add_sequence,
)
from SARCore.progress import Reporter

HELP = ("fine-tune a 3D U-Net for tumor segmentation on labeled scans, from a pre-trained "
        "model or from scratch (trials/folds, label fractions, resumable)")

#: CLI option -> FinetuneConfig field, for options given on the command line.
_FIELDS = {"data": "data", "init": "init", "sequence": "sequences", "labels": "labels",
           "preset": "preset", "spacing": "spacing", "modality": "modality",
           "label_fraction": "label_fraction", "seed": "seed", "trials": "trials",
           "folds": "folds", "epochs": "epochs", "max_steps": "max_steps",
           "batch_size": "batch_size", "width_divisor": "width_divisor", "device": "device",
           "loss": "loss", "cache_dir": "cache_dir", "name": "name", "compile": "compile",
           "head_prior": "head_prior"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--data", metavar="SPEC", help="labeled data: an MSD folder or dataset.json, a folder "
        "of BraTS case folders, or a CSV with image,label columns")
    add("--init", metavar="MODEL|scratch", help="pre-trained .sarmodel to start from, or "
        "'scratch' (default: scratch)")
    add_out(parser, "output folder (one subfolder per trial/fold, model.sarmodel, "
            "metrics.csv, loss_curves.png)", metavar="DIR")
    add_sequence(parser, extra="; the input channels of the model (default: flair)")
    add_labels(parser, extra=" (default: 'tumor:>0', the whole tumor)")
    add("--preset", metavar="NAME", help="preprocessing: brats, pancreas, ct, mri, or auto "
        "(default: brats for BraTS folders, pancreas for MSD pancreas, else the pre-trained "
        "model's; the choice is printed)")
    add("--spacing", type=float, nargs=3, metavar=("X", "Y", "Z"),
        help="resample to this spacing in mm instead of the preset's")
    add("--modality", choices=("CT", "MRI"), help="modality of the images when the data "
        "layout does not say")
    add("--label-fraction", type=float, metavar="F", help="share of the training cases "
        "that keep their labels, e.g. 0.2 for 1/5 (default: 1)")
    add("--seed", type=int, help="seed of splits, sampling and initialisation (default: 0)")
    add("--trials", type=int, metavar="N", help="random 2:1 train/test splits (default: 1)")
    add("--folds", type=int, metavar="K", help="K-fold cross-validation instead of trials")
    add("--epochs", type=int, help="maximum epochs per trial/fold (default: 100)")
    add("--max-steps", type=int, help="stop each trial/fold after this many steps")
    add("--batch-size", type=int, help="patches per step (default: 4)")
    add("--width-divisor", type=int, help="divide the U-Net widths (scratch only; a "
        "pre-trained model keeps its own)")
    add("--fresh-head", action="store_true", help="start the final 1x1 layer afresh instead "
        "of reusing the pre-trained restoration head. Use it after a short pre-training "
        "(a few epochs, e.g. the README's CPU run): such a head restores intensities and "
        "cannot become a tumor detector in a few fine-tuning steps, so the model would "
        "mark nothing (an all-empty segmentation). After a full pre-training the reused "
        "head is what the paper does")
    add("--head-prior", type=float, metavar="P", help="a fresh head starts out predicting "
        "tumor probability P everywhere, so a short fine-tuning cannot get stuck marking the "
        "whole scan; 0 = PyTorch's default init (default: 0.05)")
    add("--loss", choices=("dice", "dice_ce"), help="Dice or Dice + cross-entropy (default: dice)")
    add_device(parser, default=None)
    add("--cache-dir", metavar="DIR", help="where preprocessed volumes are cached "
        "(default: OUT/cache)")
    add("--name", help="model name written in the header (default: the output folder's)")
    add("--allow-empty-labels", action="store_true", help="let a case whose label values "
        "the --labels rule does not match train as tumor-free (default: stop with an error)")
    add_allow_outside_paths(parser)
    add("--resume", action="store_true", help="continue the run in --out after a stop")
    add("--compile", action="store_true", default=None,
        help="torch.compile the network (first steps slower; see docs/distributed.md)")
    add("--config", metavar="FILE", help="YAML/JSON file of fine-tuning options; options on "
        "the command line win")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    from SARCore.config import load_config_file

    options = load_config_file(args.config) if args.config else {}
    for option, field_name in _FIELDS.items():
        value = getattr(args, option)
        if value is not None:
            options[field_name] = value
    if args.fresh_head:
        options["transfer_head"] = False
    if args.allow_empty_labels:
        options["allow_empty_labels"] = True
    if args.allow_outside_paths:
        options["allow_outside_paths"] = True
    return options


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    from SARCore.config import from_mapping
    from SARCore.finetune import FinetuneConfig, finetune

    config = from_mapping(FinetuneConfig, _options(args), source=args.config or "command line")
    result = finetune(config, args.out, resume=args.resume, reporter=reporter)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    for split in result.splits:
        reporter.log(f"{split.name}: best validation loss {split.best_val_loss:.4f} at epoch "
                     f"{split.best_epoch}; {len(split.test)} test case(s) kept apart")
    reporter.log(f"model: {result.model_path} (from {result.selected_split})")
    reporter.done(model=result.model_path, splits=[s.name for s in result.splits],
                  out=result.out_dir, wrote=f"model.sarmodel (from {result.selected_split}), "
                  f"{len(result.splits)} split folder(s) with metrics and loss curves")
    return 0
