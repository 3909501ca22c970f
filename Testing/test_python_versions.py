"""The engine and the module run on Python 3.9 (Slicer 5.8) through 3.13 (Slicer 5.10+).

Two checks: ``vermin`` reads every file for constructs newer than 3.9 (it also
catches library calls such as ``dataclass(kw_only=True)``), and a real Python 3.9, where
one is installed, compiles every file and imports every module whose third-party
imports it can satisfy (a class body or decorator that needs 3.10 fails at import).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TREES = ("SARCore", "SARSegmentation")
PY39_CANDIDATES = ("/root/.pyenv/versions/3.9.18/bin/python3.9", "python3.9")
#: A "requires 3.10" (or later) note in vermin's violation report.
NEWER = re.compile(r"requires !?2?,? ?3\.(1\d)")


def _vermin() -> str:
    beside = Path(sys.executable).with_name("vermin")
    found = str(beside) if beside.is_file() else shutil.which("vermin")
    if not found:
        pytest.fail("vermin is not installed: pip install -e '.[test]'")
    return found


def _violations(*paths: Path) -> list[str]:
    done = subprocess.run([_vermin(), "-t=3.9-", "--violations", "--no-tips", "--no-parse-comments",
                           *map(str, paths)], capture_output=True, text=True, timeout=120)
    # 'torch.long' reads to vermin as Python 2's long: only 3.10+ notes are failures.
    return [line for line in done.stdout.splitlines() if NEWER.search(line)]


def test_vermin_catches_a_310_construct(tmp_path: Path) -> None:
    sample = tmp_path / "new.py"
    sample.write_text("from dataclasses import dataclass\n\n@dataclass(kw_only=True)\n"
                      "class A:\n    x: int\n", encoding="utf-8")
    assert any("kw_only" in line for line in _violations(sample))


def test_engine_and_module_need_no_python_newer_than_39() -> None:
    found = _violations(*(REPO / tree for tree in TREES))
    assert not found, "\n".join(found)


def test_pyproject_declares_39() -> None:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'requires-python = ">=3\.9"', text)
    assert 'target-version = "py39"' in text


def _python39() -> str | None:
    for candidate in PY39_CANDIDATES:
        path = shutil.which(candidate) or (candidate if os.path.isfile(candidate) else None)
        if path:
            return path
    return None


IMPORT_ALL = r"""
import importlib, pathlib, sys
roots = sys.argv[1:]
third_party = {"numpy", "torch", "SimpleITK", "nrrd", "yaml", "scipy", "matplotlib", "tqdm",
               "slicer", "vtk", "qt", "ctk", "PyTorchUtils", "monai", "ScriptedLoadableModule",
               "mrml", "vtkSegmentationCorePython"}
imported, skipped = 0, 0
for root in roots:
    base = pathlib.Path(root)
    sys.path.insert(0, str(base.parent))
    for path in sorted(base.rglob("*.py")):
        if path.name == "__main__.py" or "Scripts" in path.parts:
            continue
        name = ".".join(path.relative_to(base.parent).with_suffix("").parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        try:
            importlib.import_module(name)
            imported += 1
        except ModuleNotFoundError as error:
            if (error.name or "").split(".")[0] not in third_party:
                raise
            skipped += 1
print(imported, skipped)
"""


def test_every_file_compiles_and_pure_modules_import_under_39() -> None:
    python = _python39()
    if python is None:
        pytest.skip("no Python 3.9 interpreter here; vermin's check above still ran")
    files = [str(p) for tree in TREES for p in sorted((REPO / tree).rglob("*.py"))]
    compiled = subprocess.run([python, "-c", "import sys\nfor f in sys.argv[1:]: "
                               "compile(open(f, encoding='utf-8').read(), f, 'exec')", *files],
                              capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    roots = [str(REPO / "SARCore"), str(REPO / "SARSegmentation" / "SARSegmentationLib")]
    done = subprocess.run([python, "-c", IMPORT_ALL, *roots], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    imported, _ = (int(n) for n in done.stdout.split()[-2:])
    assert imported >= 5  # errors, atomic, progress, version... import for real under 3.9


def _runtime_unions(path: Path) -> list[int]:
    """Lines where ``X | Y`` of types is evaluated at run time (type aliases, isinstance);
    annotations are strings under ``from __future__ import annotations``."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        value = node.value if isinstance(node, ast.Assign) else None
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("isinstance",
                                                                          "issubclass"):
            value = node.args[1] if len(node.args) > 1 else None
        if isinstance(value, ast.BinOp) and isinstance(value.op, ast.BitOr) and all(
                isinstance(side, (ast.Name, ast.Subscript, ast.Attribute, ast.BinOp))
                and not (isinstance(side, ast.Name) and side.id.islower()
                         and side.id not in ("str", "int", "float", "bytes", "bool"))
                for side in (value.left, value.right)):
            lines.append(node.lineno)
    return lines


def test_no_runtime_union_types(tmp_path: Path) -> None:
    sample = tmp_path / "alias.py"
    sample.write_text("from pathlib import Path\nA = Path | tuple[Path, ...]\n", encoding="utf-8")
    assert _runtime_unions(sample) == [2]
    found = [f"{p.relative_to(REPO)}:{line}" for tree in TREES
             for p in sorted((REPO / tree).rglob("*.py")) for line in _runtime_unions(p)]
    assert not found, "run-time X | Y (Python 3.10+): " + ", ".join(found)
