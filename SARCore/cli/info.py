"""``sar info MODEL``: print a model file's header after checking the file.

The whole file is verified (format tag and version, header fields, weights checksum), so
``info`` doubles as an integrity check; ``--task``/``--architecture``/``--in-channels``
refuse a model that does not fit what a caller is about to do with it (exit 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from SARCore.progress import Reporter

HELP = "show (and verify) a model file's header"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="a .sarmodel file")
    parser.add_argument("--json", action="store_true", help="print the header as JSON (with "
                        "--progress json it comes in the done event instead)")
    parser.add_argument("--task", choices=("pretrain", "segmentation"),
                        help="refuse the file unless it is a model for this task")
    parser.add_argument("--architecture", help="refuse the file unless it has this "
                        "architecture (e.g. mg_unet3d)")
    parser.add_argument("--in-channels", type=int, help="refuse the file unless it takes "
                        "this many input channels")


def format_header(header: dict[str, Any]) -> str:
    """``key: value`` lines, nested values as compact JSON."""
    width = max(len(key) for key in header)
    lines = []
    for key, value in header.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        lines.append(f"{key.ljust(width)}  {shown}")
    return "\n".join(lines)


def run(args: argparse.Namespace, reporter: Reporter) -> int:
    from SARCore.models.modelfile import load_model_file

    header, state = load_model_file(args.model, task=args.task,
                                    architecture=args.architecture,
                                    in_channels=args.in_channels)
    n_parameters = sum(int(t.numel()) for t in state.values())
    shown = {**header, "n_tensors": len(state), "n_values": n_parameters}
    if args.progress == "json":  # stdout carries only events in JSON mode
        reporter.done(model=str(args.model), header=shown,
                      wrote=f"wrote nothing; {args.model} is intact")
        return 0
    print(json.dumps(shown, indent=2) if args.json else format_header(shown), flush=True)
    reporter.done(wrote=f"wrote nothing; {args.model} is intact (checksum verified)")
    return 0
