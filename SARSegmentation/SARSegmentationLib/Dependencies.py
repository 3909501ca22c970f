"""Python packages the engine needs, checked on first use and installed after asking.

torch comes through the PyTorch extension (``PyTorchUtils``), which picks the CUDA build
that fits the installed driver; the other packages through ``slicer.util.pip_install``.
Slicer's own numpy, SimpleITK and VTK are never installed, upgraded or replaced: they
are checked with ``importlib.metadata`` and pinned to their installed versions by a pip
constraints file, so a package that would need a newer one fails to install instead of
breaking Slicer.
"""

from __future__ import annotations

import importlib.metadata
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The engine's requirements; the same as SARCore's ``pyproject.toml`` (a test checks).
REQUIREMENTS = ("torch>=2.2", "numpy>=1.24", "SimpleITK>=2.3", "pynrrd>=1.0", "tqdm>=4.60",
                "scipy>=1.10", "matplotlib>=3.7", "PyYAML>=6.0")
#: Packages Slicer ships and depends on itself: pinned, never installed by this module.
PROTECTED = ("numpy", "SimpleITK", "vtk")
TORCH = "torch"


@dataclass(frozen=True)
class Unmet:
    """A requirement that is missing or too old."""

    name: str
    minimum: str
    installed: str | None

    @property
    def spec(self) -> str:
        return f"{self.name}>={self.minimum}" if self.minimum else self.name

    def describe(self) -> str:
        have = f"version {self.installed} is installed" if self.installed else "not installed"
        return f"{self.spec} ({have})"


def splitRequirement(text: str) -> tuple[str, str]:
    """``"pynrrd>=1.0"`` -> ``("pynrrd", "1.0")``; only ``>=`` bounds are used here."""
    name, _, minimum = text.partition(">=")
    return name.strip(), minimum.strip()


def versionKey(version: str) -> tuple[int, ...]:
    """``"2.13.0+cpu"`` -> ``(2, 13, 0)`` (release numbers only)."""
    release = re.match(r"\d+(\.\d+)*", version.strip())
    return tuple(int(p) for p in release.group(0).split(".")) if release else (0,)


def installedVersion(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def unmetRequirements(requirements: tuple[str, ...] = REQUIREMENTS,
                      versionOf: Callable[[str], str | None] = installedVersion) -> list[Unmet]:
    """Requirements that are missing or older than needed, in the given order."""
    unmet = []
    for text in requirements:
        name, minimum = splitRequirement(text)
        have = versionOf(name)
        if have is None or (minimum and versionKey(have) < versionKey(minimum)):
            unmet.append(Unmet(name, minimum, have))
    return unmet


def engineSkipReason(versionOf: Callable[[str], str | None] = installedVersion) -> str:
    """Why the engine cannot run here ("" when it can): the self-test skips its engine
    part with this message instead of failing where torch is not installed."""
    unmet = unmetRequirements(versionOf=versionOf)
    if not unmet:
        return ""
    return ("the engine's Python packages are not installed here ("
            + ", ".join(u.describe() for u in unmet)
            + "); install them from the module's Setup section")


@dataclass(frozen=True)
class InstallPlan:
    """What to do about unmet requirements."""

    torch: Unmet | None
    pip: list[Unmet]
    blocked: list[Unmet]  # Slicer's own packages: never touched; Slicer needs an update

    @property
    def needed(self) -> bool:
        return bool(self.torch or self.pip)

    def question(self) -> str:
        lines = ["SAR Segmentation needs these Python packages:"]
        if self.torch:
            lines.append(f"  - {self.torch.describe()}, through the PyTorch extension")
        lines += [f"  - {u.describe()}" for u in self.pip]
        lines.append("Slicer's own numpy, SimpleITK and VTK are left as they are. Install now?")
        return "\n".join(lines)


def planInstall(unmet: list[Unmet]) -> InstallPlan:
    protected = {p.lower() for p in PROTECTED}
    torch = next((u for u in unmet if u.name == TORCH), None)
    pip = [u for u in unmet if u.name != TORCH and u.name.lower() not in protected]
    blocked = [u for u in unmet if u.name.lower() in protected]
    return InstallPlan(torch, pip, blocked)


def constraintsText(versionOf: Callable[[str], str | None] = installedVersion) -> str:
    """pip constraints pinning Slicer's own packages at their installed versions."""
    pins = [f"{name}=={versionOf(name)}" for name in PROTECTED if versionOf(name)]
    return "\n".join(pins) + "\n"


def pipArguments(plan: InstallPlan, constraintsFile: str | Path) -> list[str]:
    """Arguments for ``slicer.util.pip_install`` (a list, so paths need no quoting)."""
    return [u.spec for u in plan.pip] + ["-c", str(constraintsFile)]


def installMissing(confirm: Callable[[str], bool], pipInstall: Callable | None = None,
                   installTorch: Callable[[], object] | None = None) -> bool:
    """Install what is missing after ``confirm(question)``; ``True`` when all is there.

    ``pipInstall`` defaults to ``slicer.util.pip_install``; ``installTorch`` to the PyTorch
    extension's ``installTorch(askConfirmation=True)`` (it asks again, naming the build).
    """
    plan = planInstall(unmetRequirements())
    if plan.blocked:
        names = ", ".join(u.describe() for u in plan.blocked)
        raise RuntimeError(f"Slicer's own packages are too old for SARCore: {names}. "
                           "Use a newer Slicer; this module does not replace them.")
    if not plan.needed:
        return True
    if not confirm(plan.question()):
        return False
    if plan.torch:
        if (installTorch or _installTorchWithExtension)() is None:
            return False
    if plan.pip:
        with tempfile.TemporaryDirectory() as folder:
            constraints = Path(folder) / "slicer-constraints.txt"
            constraints.write_text(constraintsText(), encoding="utf-8")
            (pipInstall or _slicerPipInstall)(pipArguments(plan, constraints))
    return not planInstall(unmetRequirements()).needed


def _installTorchWithExtension() -> object:
    try:
        import PyTorchUtils
    except ImportError as exc:
        raise RuntimeError("the PyTorch extension is missing: install 'PyTorch' from the "
                           "Extensions Manager and restart Slicer") from exc
    _, minimum = splitRequirement(next(r for r in REQUIREMENTS if r.startswith(TORCH)))
    return PyTorchUtils.PyTorchUtilsLogic().installTorch(
        askConfirmation=True, torchVersionRequirement=f">={minimum}")


def _slicerPipInstall(arguments: list[str]) -> None:
    import slicer

    slicer.util.pip_install(arguments)
