"""A Slicer scene without the Slicer application (PyPI ``slicer-core``, no Qt).

The module's logic only needs MRML, so scripts and CI run it in plain Python. This is the
warning-free set-up: an application logic with a home folder (Slicer looks for
``share/ColorFiles`` there), and the Colors, Volumes, Segmentations and SubjectHierarchy
module logics registered, as the application would do at start-up.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import slicer

_MODULE_LOGICS = (("Colors", "vtkSlicerColorLogic"), ("Volumes", "vtkSlicerVolumesLogic"),
                  ("Segmentations", "vtkSlicerSegmentationsModuleLogic"),
                  ("SubjectHierarchy", "vtkSlicerSubjectHierarchyModuleLogic"))


def makeScene(home: str | Path | None = None):
    """A new scene with Slicer's module logics; also set as ``slicer.mrmlScene``."""
    home = Path(home) if home else Path(tempfile.mkdtemp(prefix="SAR-slicer-home-"))
    (home / "share" / "ColorFiles").mkdir(parents=True, exist_ok=True)
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetHomeDirectory(str(home))
    app.SetShareDirectory("share")
    app.SetMRMLScene(scene)
    logics = {}
    for name, className in _MODULE_LOGICS:
        logic = getattr(slicer, className)()
        logic.SetMRMLApplicationLogic(app)
        logic.SetMRMLScene(scene)
        app.SetModuleLogic(name, logic)
        logics[name] = logic
    app.SetColorLogic(logics["Colors"])
    scene._sarLogics = (app, logics)  # the logics must live as long as the scene
    slicer.mrmlScene = scene
    return scene


def currentScene():
    """Slicer's scene inside the application, else a new headless one."""
    scene = getattr(slicer, "mrmlScene", None)
    return scene if scene is not None else makeScene()
