"""Options every verb spells the same way: ``--out``, ``--device``, ``--sequence``,
``--labels``, ``--allow-outside-paths``, ``--progress``, ``--log-level``, and one form for
defaults in ``--help``.

Verbs (and the Slicer batch script) call these helpers instead of declaring the options
themselves, so a value that works in one verb works in every verb. Old spellings stay
as hidden aliases (``--output``) so existing scripts keep running.
"""

from __future__ import annotations

import argparse
import re

#: ``--device`` values: ``mps`` is accepted here and refused by the engine where the
#: installed torch has no Metal backend.
DEVICE_HELP = "auto (CUDA when usable, else CPU), cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")

#: ``--sequence``: one sequence name, several joined by commas, or ``all`` (preprocess).
SEQUENCE_HELP = ("MRI sequence(s) of BraTS-style case folders: flair (alias t2f), t1c, t1 "
                 "(t1n) or t2 (t2w); several joined by commas (flair,t1c)")

#: ``--labels``: the class-rule syntax of :mod:`SARCore.finetune.labels`.
LABELS_HELP = ("classes as name:rule joined by commas: 'tumor:>0' (every non-zero label), "
               "'pancreas:1,tumor:2', 'core:1|3|4', 'x:1-3', 'y:>=2'")

PROGRESS_CHOICES = ("bar", "json", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to every option whose default is a real value.

    Options whose default lives in a config (argparse default ``None``) state it in their
    help text in the same ``(default: X)`` form.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("(default:" in text or default is None or default is False
                or default is argparse.SUPPRESS or not action.option_strings):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})".strip()


def device(value: str) -> str:
    """argparse type of ``--device``: the same spellings in every verb."""
    text = value.strip().lower()
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"must be one of {DEVICE_HELP}, not {value!r}")
    return text


#: BraTS 2023 and other spellings -> the sequence names the engine uses.
SEQUENCE_ALIASES = {"t2f": "flair", "t2flair": "flair", "fla": "flair", "t1ce": "t1c",
                    "t1gd": "t1c", "t1post": "t1c", "t1n": "t1", "t1w": "t1", "t2w": "t2"}


def sequences(value: str) -> str:
    """argparse type of ``--sequence``: ``flair`` or ``flair,t1c`` (spaces dropped, BraTS
    2023 names such as ``t2f`` mapped to the engine's ``flair``)."""
    parts = [p.strip().lower() for p in value.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("give at least one sequence, e.g. flair")
    return ",".join(SEQUENCE_ALIASES.get(p, p) for p in parts)


def add_out(parser: argparse.ArgumentParser, help: str, required: bool = True,
            **kwargs) -> None:
    """``--out`` (hidden alias ``--output``, the batch script's former name)."""
    parser.add_argument("--out", "--output", dest="out", required=required, help=help,
                        **kwargs)


def add_device(parser: argparse.ArgumentParser, default: str | None = "auto",
               help: str | None = None) -> None:
    parser.add_argument("--device", type=device, default=default, metavar="DEVICE",
                        help=help or DEVICE_HELP + ("" if default else " (default: auto)"))


def add_sequence(parser: argparse.ArgumentParser, default: str | None = None,
                 extra: str = "") -> None:
    parser.add_argument("--sequence", type=sequences, default=default, metavar="SEQ[,SEQ]",
                        help=SEQUENCE_HELP + extra)


def add_labels(parser: argparse.ArgumentParser, extra: str = "") -> None:
    parser.add_argument("--labels", metavar="RULES", help=LABELS_HELP + extra)


#: ``--allow-outside-paths``: one rule for every verb that reads an MSD ``dataset.json``.
ALLOW_OUTSIDE_HELP = ("let a dataset.json (or a fine-tuning CSV) name files outside its own "
                      "folder (absolute paths, ..); refused by default, so a downloaded "
                      "dataset cannot reach other files")


def add_allow_outside_paths(parser: argparse.ArgumentParser) -> None:
    """``--allow-outside-paths`` (``args.allow_outside_paths``), spelled alike everywhere."""
    parser.add_argument("--allow-outside-paths", action="store_true", help=ALLOW_OUTSIDE_HELP)


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--progress`` and ``--log-level``, given to every verb by the CLI."""
    parser.add_argument(
        "--progress", choices=PROGRESS_CHOICES, default="bar",
        help="bar: a progress bar at a terminal, plain lines in a log file; json: JSON lines "
             "on stdout (docs/progress-protocol.md); none: nothing")
    parser.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS,
                        help="DEBUG also shows tracebacks")


def json_requested(argv: list[str]) -> bool:
    """Whether ``argv`` asks for ``--progress json`` (read before argparse has parsed it)."""
    for index, item in enumerate(argv):
        if item == "--progress=json" or (item == "--progress" and index + 1 < len(argv)
                                         and argv[index + 1] == "json"):
            return True
    return False
