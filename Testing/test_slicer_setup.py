"""First-use checks: which packages are missing and how they would be installed."""

from __future__ import annotations

import os

import conftest_slicer  # noqa: F401  (puts the module folder on sys.path)
import pytest

from SARSegmentationLib import Dependencies
from SARSegmentationLib.Engine import engineCommand, engineEnvironment, engineRoot

SLICER_LIKE = {"torch": None, "numpy": "1.26.4", "SimpleITK": "2.2.1", "vtk": "9.2.20230607",
               "pynrrd": None, "tqdm": "4.66.1", "scipy": "1.9.0", "matplotlib": "3.8.0",
               "PyYAML": "6.0.1"}


def test_this_environment_has_everything() -> None:
    assert Dependencies.unmetRequirements() == []
    asked: list[str] = []
    assert Dependencies.installMissing(lambda q: asked.append(q) or True,
                                       pipInstall=lambda args: pytest.fail("pip called"))
    assert asked == []  # nothing missing: no question, no install


def test_plan_installs_only_what_is_missing_and_never_slicers_own() -> None:
    unmet = Dependencies.unmetRequirements(versionOf=SLICER_LIKE.get)
    assert [u.name for u in unmet] == ["torch", "SimpleITK", "pynrrd", "scipy"]
    plan = Dependencies.planInstall(unmet)
    assert plan.torch.name == "torch"
    assert [u.spec for u in plan.pip] == ["pynrrd>=1.0", "scipy>=1.10"]
    assert [u.describe() for u in plan.blocked] == [
        "SimpleITK>=2.3 (version 2.2.1 is installed)"]
    question = plan.question()
    assert "torch>=2.2 (not installed), through the PyTorch extension" in question
    assert "numpy, SimpleITK and VTK are left as they are" in question


def test_pip_gets_constraints_pinning_slicers_packages(tmp_path) -> None:
    pins = Dependencies.constraintsText(versionOf=SLICER_LIKE.get)
    assert pins.splitlines() == ["numpy==1.26.4", "SimpleITK==2.2.1", "vtk==9.2.20230607"]
    plan = Dependencies.planInstall(Dependencies.unmetRequirements(versionOf=SLICER_LIKE.get))
    constraints = tmp_path / "c.txt"
    assert Dependencies.pipArguments(plan, constraints) == [
        "pynrrd>=1.0", "scipy>=1.10", "-c", str(constraints)]


@pytest.mark.parametrize(("version", "key"), [("2.13.0+cpu", (2, 13, 0)), ("1.26", (1, 26)),
                                              ("6.0.1rc1", (6, 0, 1)), ("weird", (0,))])
def test_version_keys(version: str, key: tuple[int, ...]) -> None:
    assert Dependencies.versionKey(version) == key


def test_engine_command_and_environment() -> None:
    command = engineCommand("segment", ["a.nrrd", "--model", "m"], python="/py")
    assert command == ["/py", "-m", "SARCore", "segment", "a.nrrd", "--model", "m",
                       "--progress", "json"]
    env = engineEnvironment({"PYTHONPATH": "/other"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(engineRoot()), "/other"]
    assert env["PYTHONUNBUFFERED"] == "1" and (engineRoot() / "SARCore").is_dir()


def test_engine_constants_are_read_without_importing_the_engine() -> None:
    from SARSegmentationLib.Engine import engineConstant

    assert engineConstant("SARCore.inference.segment", "BYTES_PER_VOXEL_CHANNEL", -1) > 0
    assert engineConstant("SARCore.cli", "EXIT_USAGE", -1) == -1  # a tuple assignment
    assert engineConstant("SARCore.nowhere", "X", 7) == 7
