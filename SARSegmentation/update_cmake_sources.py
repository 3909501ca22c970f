"""Regenerate the file lists in SARSegmentation/CMakeLists.txt from the source tree.

    python SARSegmentation/update_cmake_sources.py          # rewrite the lists
    python SARSegmentation/update_cmake_sources.py --check  # exit 1 if they are stale

Lists every ``.py`` of the module (except this developer tool) and of ``SARCore/``, the
module's UI and icon resources and SARCore's data files, between the ``# BEGIN``/``# END`` markers. A test
runs ``--check`` logic so a new file nobody listed fails CI instead of missing from the
installed extension.
"""

from __future__ import annotations

import sys
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parent
REPO = MODULE_DIR.parent
CMAKE_FILE = MODULE_DIR / "CMakeLists.txt"
NOT_SHIPPED = {Path(__file__).name}  # developer tools at the module's top level
RESOURCE_SUFFIXES = (".ui", ".png", ".svg", ".json")


def _files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes
                  and "__pycache__" not in p.parts and not p.name.startswith("."))


def moduleScripts() -> list[str]:
    return [p.relative_to(MODULE_DIR).as_posix() for p in _files(MODULE_DIR, (".py",))
            if p.name not in NOT_SHIPPED or p.parent != MODULE_DIR]


def engineScripts() -> list[str]:
    return [p.relative_to(REPO).as_posix() for p in _files(REPO / "SARCore", (".py",))]


def engineResources() -> list[str]:
    """Data files SARCore reads at run time (anything but Python sources and caches)."""
    return [p.relative_to(REPO).as_posix() for p in sorted((REPO / "SARCore").rglob("*"))
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
            and not p.name.startswith(".")]


def moduleResources() -> list[str]:
    return [p.relative_to(MODULE_DIR).as_posix()
            for p in _files(MODULE_DIR / "Resources", RESOURCE_SUFFIXES)]


def expectedBlocks() -> dict[str, list[str]]:
    return {"MODULE_PYTHON_SCRIPTS": moduleScripts(), "SARCORE_PYTHON_SCRIPTS": engineScripts(),
            "MODULE_PYTHON_RESOURCES": moduleResources(), "SARCORE_RESOURCES": engineResources()}


def listedBlocks(text: str) -> dict[str, list[str]]:
    """The file names between ``# BEGIN <NAME>`` and ``# END <NAME>`` in CMakeLists.txt."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# BEGIN "):
            current = stripped[len("# BEGIN "):]
            blocks[current] = []
        elif stripped.startswith("# END "):
            current = None
        elif current and stripped and not stripped.startswith("#"):
            blocks[current].append(stripped)
    return blocks


def render(text: str, blocks: dict[str, list[str]]) -> str:
    out, skipping = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# BEGIN "):
            out.append(line)
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + name for name in blocks[stripped[len("# BEGIN "):]])
            skipping = True
        elif stripped.startswith("# END "):
            out.append(line)
            skipping = False
        elif not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    text = CMAKE_FILE.read_text(encoding="utf-8")
    expected = expectedBlocks()
    if "--check" in argv:
        stale = [name for name, files in expected.items() if listedBlocks(text).get(name) != files]
        for name in stale:
            print(f"{CMAKE_FILE}: {name} is out of date; run {Path(__file__).name}")
        return 1 if stale else 0
    CMAKE_FILE.write_text(render(text, expected), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
