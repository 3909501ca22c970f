"""``preview``: a PNG of a few cubes per scale beside their corrupted versions."""

from __future__ import annotations

import argparse

from SARCore.cli.options import add_out
from SARCore.progress import Reporter

HELP = "draw a few cubes per scale of a cube store beside their corrupted versions (PNG)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cubes", metavar="CUBES_DIR", help="cube store written by `cubes`")
    add_out(parser, "PNG file to write")
    parser.add_argument("--per-scale", type=int, default=3, help="cubes per scale")
    parser.add_argument("--seed", type=int, default=0, help="which cubes and corruptions")


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    from SARCore.cubes.preview import render_preview

    path = render_preview(args.cubes, args.out, per_scale=args.per_scale, seed=args.seed)
    reporter.done(out=str(path), wrote="a preview PNG")
    return 0
