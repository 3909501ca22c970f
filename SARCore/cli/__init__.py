"""The ``sar`` / ``python -m SARCore`` command line.

Each verb lives in its own module ``SARCore.cli.<verb>`` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args, reporter) -> int``. Heavy imports (torch,
SimpleITK) happen inside ``run`` so ``--help`` answers at once.

Exit codes: 0 success, 1 failure (a :class:`~SARCore.errors.SARError` or a batch with
failed cases), 2 bad usage (argparse or a :class:`~SARCore.errors.ConfigError`),
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from types import ModuleType

from SARCore.cli.failures import describe, log_traceback
from SARCore.errors import ConfigError, SARError
from SARCore.outputs import claim_output_folder
from SARCore.progress import make_reporter
from SARCore.version import __version__

#: Verbs in the order of the paper's data flow.
VERBS = ("preprocess", "cubes", "preview", "pretrain", "info", "finetune", "segment",
         "evaluate", "experiment")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _verb_modules() -> dict[str, ModuleType]:
    modules = {}
    for verb in VERBS:
        try:
            modules[verb] = importlib.import_module(f"SARCore.cli.{verb}")
        except ModuleNotFoundError as exc:  # a verb not built yet must not break the others
            if exc.name != f"SARCore.cli.{verb}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sar", description="SAR: scale-aware restoration pre-training and 3D tumor "
        "segmentation (preprocess -> cubes -> pretrain -> finetune -> segment -> evaluate).")
    parser.add_argument("--version", action="version", version=f"SARCore {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, module in _verb_modules().items():
        verb_parser = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        verb_parser.add_argument(
            "--progress", choices=("bar", "json", "none"), default="bar",
            help="terminal progress bar (default), JSON lines on stdout (for the Slicer "
                 "module), or nothing")
        verb_parser.add_argument("--log-level", default="WARNING",
                                 choices=("DEBUG", "INFO", "WARNING", "ERROR"))
        module.add_arguments(verb_parser)
        verb_parser.set_defaults(_run=module.run)
    return parser


#: Verbs whose ``--out`` is a folder: it must be writable, and one run holds it at a time.
FOLDER_VERBS = ("preprocess", "cubes", "pretrain", "finetune", "segment", "evaluate",
                "experiment")


def output_folder_of(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """The output folder claim of this run (nothing for other verbs, or ranks > 0 of a
    torchrun job, whose rank 0 holds the folder for all)."""
    out = getattr(args, "out", None)
    if args.verb not in FOLDER_VERBS or out is None or int(os.environ.get("RANK", "0")):
        return contextlib.nullcontext()
    return claim_output_folder(out)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    reporter = make_reporter(args.progress)
    try:
        with output_folder_of(args):
            return int(args._run(args, reporter))
    except ConfigError as exc:
        reporter.error(str(exc), kind="usage")
        if args.progress == "json":
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SARError as exc:
        reporter.error(str(exc), kind=type(exc).__name__, file=exc.path)
        if args.progress == "json":
            print(f"error: {exc}", file=sys.stderr)
        log_traceback(exc)
        return EXIT_FAILURE
    except (OSError, MemoryError) as exc:  # disk full, no access, ...: expected, no traceback
        known = describe(exc)
        if known is None:
            raise
        kind, message, file = known
        reporter.error(message, kind=kind, file=file)
        if args.progress == "json":
            print(f"error: {message}", file=sys.stderr)
        log_traceback(exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        reporter.error("interrupted", kind="CancelledError")
        return EXIT_INTERRUPTED
