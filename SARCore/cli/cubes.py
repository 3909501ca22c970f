"""``cubes``: crop multi-scale pre-training cubes from preprocessed volumes."""

from __future__ import annotations

import argparse

from SARCore.cli.options import add_out
from SARCore.progress import Reporter

HELP = ("crop multi-scale cubes (1/2, 1/4, 1/8 of the volume side, resized to 64x64x32) "
        "from preprocessed folders into a memory-mappable cube store")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preprocessed", nargs="+", metavar="PREPROCESSED_DIR",
                        help="folder(s) written by `preprocess` (with manifest.json)")
    add_out(parser, "cube store folder")
    parser.add_argument("--per-volume", nargs=3, type=int, metavar=("L", "M", "S"),
                        help="cubes per volume for the large, medium and small scale "
                             "(default: 8 8 16, the paper's 1:1:2 ratio)")
    parser.add_argument("--scales", nargs="+", type=int, choices=(0, 1, 2),
                        help="scale classes to crop a subset for ablations (default: 0 1 2)")
    parser.add_argument("--seed", type=int, help="random seed (default: 0)")
    parser.add_argument("--min-foreground", type=float,
                        help="reject crops with a smaller fraction of voxels above 0.01 "
                             "(default: 0.1)")
    parser.add_argument("--crop-rule", choices=("zoom", "fraction"),
                        help="zoom: physical 2:2:1 boxes, the same zoom on every axis; "
                             "fraction: the old per-axis fraction, which squashes z "
                             "(default: zoom)")
    parser.add_argument("--shard-size", type=int, help="cubes per shard file (default: 1024)")
    parser.add_argument("--preview", metavar="PNG",
                        help="also write a preview PNG of cubes and their corrupted versions")


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    from SARCore.cubes import CubeConfig, build_cubes
    from SARCore.cubes.generator import cube_counts_text

    given = {"per_volume": args.per_volume, "scales": args.scales, "seed": args.seed,
             "min_foreground": args.min_foreground, "shard_size": args.shard_size,
             "crop_rule": args.crop_rule}
    config = CubeConfig.from_dict({k: v for k, v in given.items() if v is not None})
    info = build_cubes(args.preprocessed, args.out, config, reporter)
    if info.fallbacks:
        reporter.log(f"{info.fallbacks} cube(s) kept below --min-foreground after "
                     f"{config.max_tries} tries")
    counts = cube_counts_text(info.per_scale, info.per_modality)
    reporter.log(f"{info.count} cubes; {counts} (also in {info.root}/cubes.json)")
    if args.preview:
        from SARCore.cubes.preview import render_preview

        render_preview(info.root, args.preview, seed=config.seed)
        reporter.log(f"preview written to {args.preview}")
    reporter.done(wrote=f"{info.count} cubes" + (f" and {args.preview}" if args.preview
                                                 else ""),
                  out=str(info.root), count=info.count, per_scale=info.per_scale,
                  per_modality=info.per_modality, cases=len(info.cases),
                  fallbacks=info.fallbacks, skipped=info.skipped)
    return 0
