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
import json
import logging
import os
import sys
from types import ModuleType
from typing import NoReturn

from SARCore.cli.failures import describe, log_traceback
from SARCore.cli.options import HelpFormatter, add_common, json_requested
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


#: Packages SARCore needs at run time (``pip install -e .`` brings them).
REQUIRED_PACKAGES = ("torch", "numpy", "SimpleITK", "nrrd", "scipy", "tqdm", "yaml",
                     "matplotlib")


class Parser(argparse.ArgumentParser):
    """Usage errors in the CLI's one error style; with ``--progress json`` also as a JSON
    ``error`` event (docs/progress-protocol.md), exit code 2."""

    json_events = False

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.print_usage(sys.stderr)
        text = f"{self.prog}: {message} (see {self.prog} --help)"
        print(f"error: {text}", file=sys.stderr)
        if Parser.json_events:
            _emit_error(text, "usage", None, EXIT_USAGE)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="sar", description="SAR: scale-aware restoration pre-training and 3D tumor "
        "segmentation (preprocess -> cubes -> pretrain -> finetune -> segment -> evaluate).",
        epilog="Every verb has --help. Exit codes: 0 success, 1 failure, 2 bad usage, "
               "130 interrupted. JSON events: docs/progress-protocol.md.")
    parser.add_argument("--version", action="version", version=f"SARCore {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, module in _verb_modules().items():
        verb_parser = sub.add_parser(verb, help=module.HELP, description=module.HELP,
                                     formatter_class=HelpFormatter)
        add_common(verb_parser)
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


def missing_package_message(exc: ModuleNotFoundError) -> str | None:
    """One sentence for a run-time package this Python lacks, else ``None`` (a bug)."""
    name = (exc.name or "").split(".")[0]
    if name not in REQUIRED_PACKAGES:
        return None
    return (f"this Python ({sys.executable}) lacks the package {name!r} that SARCore needs: "
            "run ./sar.sh setup and use ./sar.sh <verb> (or .venv/bin/sar), or install "
            "SARCore into this Python with: pip install torch==2.13.0 -e .")


def _emit_error(message: str, kind: str, file: str | None, exit_code: int) -> None:
    print(json.dumps({"event": "error", "message": message, "kind": kind, "file": file,
                      "exit_code": exit_code}), flush=True)


def _tolerate_narrow_terminals() -> None:
    """A C/POSIX locale gives ASCII streams: escape "±" and the like rather than crash."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _tolerate_narrow_terminals()
    Parser.json_events = json_requested(argv)
    try:
        parser = build_parser()
    except ModuleNotFoundError as exc:
        text = missing_package_message(exc)
        if text is None:
            raise
        print(f"error: {text}", file=sys.stderr)
        if Parser.json_events:
            _emit_error(text, "MissingPackage", None, EXIT_FAILURE)
        return EXIT_FAILURE
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    reporter = make_reporter(args.progress, args.verb)
    json_mode = args.progress == "json"
    try:
        with output_folder_of(args):
            return int(args._run(args, reporter))
    except ConfigError as exc:
        reporter.error(str(exc), kind="usage", file=exc.path, exit_code=EXIT_USAGE)
        if json_mode:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SARError as exc:
        reporter.error(str(exc), kind=type(exc).__name__, file=exc.path,
                       exit_code=EXIT_FAILURE)
        if json_mode:
            print(f"error: {exc}", file=sys.stderr)
        log_traceback(exc)
        return EXIT_FAILURE
    except (OSError, MemoryError) as exc:  # disk full, no access, ...: expected, no traceback
        known = describe(exc)
        if known is None:
            raise
        kind, message, file = known
        reporter.error(message, kind=kind, file=file, exit_code=EXIT_FAILURE)
        if args.progress == "json":
            print(f"error: {message}", file=sys.stderr)
        log_traceback(exc)
        return EXIT_FAILURE
    except ModuleNotFoundError as exc:
        text = missing_package_message(exc)
        if text is None:
            raise
        reporter.error(text, kind="MissingPackage", file=None, exit_code=EXIT_FAILURE)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        reporter.error("interrupted", kind="CancelledError", file=None,
                       exit_code=EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
