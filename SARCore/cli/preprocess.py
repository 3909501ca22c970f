"""``preprocess``: resample and normalise scans into a folder with ``manifest.json``."""

from __future__ import annotations

import argparse

from SARCore.cli.options import add_allow_outside_paths, add_out, add_sequence
from SARCore.errors import ConfigError
from SARCore.preprocess.presets import PRESETS
from SARCore.progress import Reporter

HELP = ("resample and normalise scans (files, folders, DICOM series, MSD dataset.json, "
        "BraTS case folders) with a preset; resumable")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders of them, DICOM series folders, an MSD "
                             "dataset folder (dataset.json) or BraTS case folders")
    add_out(parser, "output folder")
    parser.add_argument("--preset", required=True,
                        help=f"one of {', '.join(PRESETS)}")
    parser.add_argument("--spacing", nargs=3, type=float, metavar=("X", "Y", "Z"),
                        help="target spacing in mm (default: the preset's, 1 1 1)")
    parser.add_argument("--clip", nargs=2, type=float, metavar=("LO", "HI"),
                        help="intensity clip range (default: the preset's)")
    parser.add_argument("--modality", type=str.upper, choices=("CT", "MRI"),
                        help="modality of every input (default: from dataset.json, BraTS "
                             "folders, or the preset)")
    add_sequence(parser, default="flair",
                 extra=", or all; several or all give one case per sequence, named "
                       "<folder>_<sequence>")
    parser.add_argument("--label-map", nargs="+", metavar="SRC:DST",
                        help="remap label values, e.g. 2:1 4:1 (values not named are kept)")
    add_allow_outside_paths(parser)


def parse_label_map(items: list[str] | None) -> list[tuple[int, int]] | None:
    """``["4:3", "2:1"]`` -> ``[(4, 3), (2, 1)]``."""
    if not items:
        return None
    pairs = []
    for item in items:
        try:
            source, target = item.split(":")
            pairs.append((int(source), int(target)))
        except ValueError as exc:
            raise ConfigError(f"--label-map entries must look like SRC:DST, not {item!r}") \
                from exc
    return pairs


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    from SARCore.io.discovery import discover_cases
    from SARCore.preprocess import get_preset, preprocess_cases

    preset = get_preset(args.preset, target_spacing=args.spacing, clip=args.clip,
                        label_map=parse_label_map(args.label_map))
    cases = discover_cases(args.inputs, sequence=args.sequence, modality=args.modality,
                           allow_outside=args.allow_outside_paths)
    reporter.log(f"{len(cases)} case(s), preset {preset.name}, output {args.out}")
    report = preprocess_cases(cases, args.out, preset, reporter)
    summary = {"done": len(report.done), "skipped": len(report.skipped),
               "failed": [{"case": f.case_id, "file": f.file, "reason": f.reason}
                          for f in report.failed],
               "out": str(report.out_dir)}
    if report.failed:
        reporter.error(f"{len(report.failed)} of {len(cases)} case(s) failed:\n"
                       + "\n".join(f"  {f.case_id}: {f.reason}" for f in report.failed),
                       kind="DataError", file=report.failed[0].file, exit_code=1, **summary)
        return 1
    reporter.done(wrote=f"{len(report.done)} preprocessed volume(s) and manifest.json "
                        f"({len(report.skipped)} already done, skipped)", **summary)
    return 0
