"""``sar experiment CONFIG``: the whole paper protocol from one YAML file, resumable."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from SARCore.cli.options import add_out
from SARCore.progress import Reporter

HELP = ("run a whole experiment from one YAML file: preprocess -> cubes -> pre-train each "
        "method -> fine-tune each init x trial x label fraction -> segment the test cases -> "
        "evaluate -> report.md (skips what is done; rerun to resume)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="experiment YAML (see experiments/*.yaml)")
    parser.add_argument("--data-root", type=Path, metavar="DIR",
                        help="folder the config's data paths are relative to (default: "
                             "$SAR_DATA, else ../shared/data beside the repository)")
    add_out(parser, "output folder (default: the config's 'output', else runs/<name>)",
            required=False, type=Path, metavar="DIR")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        dest="overrides", help="override a config entry by its dotted path, "
                        "e.g. --set finetuning.max_steps=4 (repeatable; value read as YAML)")


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    from SARCore.experiment import load_experiment, run_experiment

    config = load_experiment(args.config, args.overrides)
    if config.cpu_threads:
        import torch

        torch.set_num_threads(config.cpu_threads)
    out = args.out or Path(config.output or f"runs/{config.name}")
    data_root = args.data_root or os.environ.get("SAR_DATA") or None
    result = run_experiment(config, out, data_root, reporter)
    reporter.log(f"{len(result.ran)} stage(s) ran, {len(result.skipped)} already done; "
                 f"report: {result.report}")
    reporter.done(wrote=f"report.md ({len(result.ran)} stage(s) ran, "
                        f"{len(result.skipped)} already done)", report=str(result.report), out=str(result.out_dir), ran=result.ran,
                  skipped=result.skipped)
    return 0
