"""Where the SARCore engine lives and how to start its command line.

Every long task runs ``<python> -m SARCore <verb> ... --progress json`` in a separate
process with ``PythonSlicer``: inside Slicer ``sys.executable`` already names it, but it
is looked up the way ``slicer.util._executePythonModule`` does (on ``PATH``, then in
Slicer's ``bin/``), so the engine gets Slicer's launcher environment on every platform.
"""

from __future__ import annotations

import ast
import functools
import os
import shutil
import sys
from pathlib import Path

#: The folder of the module file (``SARSegmentation/`` in the source tree,
#: ``qt-scripted-modules/`` once installed).
MODULE_DIR = Path(__file__).resolve().parent.parent


def engineRoot() -> Path:
    """The folder holding the ``SARCore`` package.

    Installed extensions ship SARCore beside the module (``qt-scripted-modules/SARCore``);
    in the source tree it is the repository root, one level above the module folder.
    """
    for candidate in (MODULE_DIR, MODULE_DIR.parent):
        if (candidate / "SARCore" / "__init__.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"the SARCore engine was not found beside {MODULE_DIR} nor in {MODULE_DIR.parent}; "
        "reinstall the SARExtension")


def ensureEngineImportable() -> None:
    """Make ``import SARCore`` work in this process (small helpers only; no torch)."""
    root = str(engineRoot())
    if root not in sys.path:
        sys.path.insert(0, root)


def _slicerApp():
    try:
        from slicer import app  # only defined inside the Slicer application
    except ImportError:
        return None
    return app


def pythonExecutable() -> str:
    """The interpreter that runs SARCore: PythonSlicer in Slicer, else this Python."""
    exe = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
    app = _slicerApp()
    if app is not None:
        found = shutil.which("PythonSlicer")
        if found:
            return found
        candidate = Path(app.slicerHome) / "bin" / exe
        if candidate.is_file():
            return str(candidate)
        raise FileNotFoundError(f"PythonSlicer was not found on PATH nor in {candidate.parent}")
    beside = Path(sys.executable).parent / exe  # running inside PythonSlicer (python-real)
    return str(beside) if beside.is_file() else sys.executable


def engineEnvironment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the engine process: SARCore importable, unbuffered UTF-8 output."""
    env = dict(os.environ if base is None else base)
    root = str(engineRoot())
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def engineCommand(verb: str, arguments: list[str], python: str | None = None) -> list[str]:
    """The full command line for one SARCore verb with JSON progress on stdout."""
    return [python or pythonExecutable(), "-m", "SARCore", verb, *arguments,
            "--progress", "json"]


@functools.cache
def engineConstant(module: str, name: str, default: float) -> float:
    """A numeric constant of an engine module, read from its source without importing it.

    The panel shows figures the engine defines (e.g. its measured memory per voxel) but
    must not import torch to get them; reading the assignment keeps one source of truth.
    """
    path = engineRoot() / Path(*module.split(".")).with_suffix(".py")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return default
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, (int, float)):
                return value.value
    return default
