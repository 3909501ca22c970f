"""Segment every volume in a folder with a SAR model and write ``.seg.nrrd`` files.

For a multi-sequence model the folder holds case folders, one file per sequence.

    Slicer --no-splash --no-main-window --python-script sar_batch_segment.py \
        --input DIR --model FILE.sarmodel --out DIR [--device auto|cpu|cuda|mps] [--fast]

It also runs in plain Python with PyPI ``slicer-core`` installed. Exit code: 0 all files
segmented, 1 some failed (each is listed), 2 bad usage or no volume in the folder, 3 an
unexpected error. ``Slicer --python-script`` does not exit by itself when a script raises,
so every error is caught here, printed, and turned into an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # SARSegmentationLib


def parseArguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sar_batch_segment.py", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--input", required=True, type=Path,
                        help="folder of volume files (for a multi-sequence model: of case "
                             "folders, one file per sequence)")
    parser.add_argument("--model", required=True, type=Path, help="a .sarmodel file")
    parser.add_argument("--out", "--output", dest="output", required=True, type=Path,
                        help="folder for .seg.nrrd (--output: the former name)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--fast", action="store_true", help="faster, slightly coarser")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo every file; without it a file whose .seg.nrrd came from "
                             "the same model and input is skipped, and one from another "
                             "model or input is refused")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    try:
        args = parseArguments(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage; keep Slicer's exit code
        return int(exc.code or 0)
    from SARCore.errors import SARError
    from SARSegmentationLib.Batch import segmentFolder
    from SARSegmentationLib.Headless import currentScene

    try:
        report = segmentFolder(args.input, args.model, args.output, args.device, args.fast,
                               scene=currentScene(), overwrite=args.overwrite)
    except SARError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for source, target in report.written.items():
        print(f"ok      {source} -> {target}")
    for source, target in report.skipped.items():
        print(f"skipped {source}: {target} came from this model and file")
    for source, why in report.failed.items():
        print(f"FAILED  {source}: {why}", file=sys.stderr)
    if report.exitCode == 2:
        print(f"no volume files found in {args.input}", file=sys.stderr)
    print(f"{len(report.written)} segmented, {len(report.skipped)} skipped (already done), "
          f"{len(report.failed)} failed")
    return report.exitCode


def safeMain(argv: list[str]) -> int:
    """:func:`main`, with any exception printed (one line; the traceback with
    ``SAR_DEBUG=1``) and turned into exit code 3 so that Slicer always ends."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything left uncaught would keep Slicer running
        if os.environ.get("SAR_DEBUG"):
            traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(safeMain(sys.argv[1:]))
