"""Reading and writing MRML nodes through their storage nodes.

These helpers use only MRML classes, so they behave the same inside Slicer and headless
(PyPI ``slicer-core``, where ``slicer.util.loadVolume``/``saveNode`` need the missing
application). Writes are atomic: a temporary sibling that keeps the real suffix (so the
writer picks the right format), then a rename.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
from pathlib import Path

import slicer

from SARSegmentationLib.Engine import ensureEngineImportable

ensureEngineImportable()
from SARCore.atomic import atomic_path  # noqa: E402  (needs the engine on sys.path)
from SARCore.errors import DataError  # noqa: E402

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".hdr", ".img",
                   ".vtk", ".img.gz")


def fileStem(path: str | Path) -> str:
    """``case.nii.gz`` -> ``case``; ``case.seg.nrrd`` -> ``case``."""
    name = Path(path).name
    for suffix in (".seg.nrrd", *VOLUME_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def safeName(text: str, fallback: str = "case") -> str:
    """A file-name-safe identifier from a node name (letters, digits, ``-``, ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")
    return cleaned or fallback


def isVolumeFile(path: Path) -> bool:
    name = path.name.lower()
    return (path.is_file() and not name.startswith(".") and not name.endswith(".seg.nrrd")
            and name.endswith(VOLUME_SUFFIXES))


def loadVolume(scene, path: str | Path, name: str | None = None, labelmap: bool = False):
    """A volume file as a new scalar (or label map) volume node in ``scene``."""
    path = Path(path)
    if not path.is_file():
        raise DataError("volume file not found", path)
    className = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(className, name or fileStem(path))
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetSingleFile(True)
    if labelmap:
        storage.SetCenterImage(False)
    if not storage.ReadData(node) or node.GetImageData() is None:
        scene.RemoveNode(node)
        raise DataError("cannot be read as a volume (damaged, or not an image format "
                        "Slicer reads)", path)
    if node.GetImageData().GetNumberOfScalarComponents() != 1:
        scene.RemoveNode(node)
        raise DataError("has several components per voxel; SAR needs one scalar volume",
                        path, "split it into one volume per sequence")
    scene.AddNode(storage)  # as Slicer's loader does: saving the scene keeps the file
    node.SetAndObserveStorageNodeID(storage.GetID())
    node.CreateDefaultDisplayNodes()
    return node


def saveNode(node, path: str | Path, compress: bool = True) -> Path:
    """Write ``node`` (volume or segmentation) to ``path`` atomically; returns the path.

    ``compress=False`` for files that live for one engine run (gzip is slow on big CTs).
    """
    path = Path(path)
    storage = node.CreateDefaultStorageNode()
    if storage is None:
        raise DataError(f"a {node.GetClassName()} cannot be written to a file", path)
    with atomic_path(path) as tmp:
        storage.SetFileName(str(tmp))
        if hasattr(storage, "SetUseCompression"):
            storage.SetUseCompression(bool(compress))
        if not storage.WriteData(node):
            raise DataError(f"writing {node.GetName()!r} failed", path,
                            "check the folder exists and is writable")
    return path


def loadSegmentation(scene, path: str | Path, name: str | None = None):
    """A ``.seg.nrrd`` (or other segmentation file) as a new segmentation node."""
    path = Path(path)
    if not path.is_file():
        raise DataError("segmentation file not found", path)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or fileStem(path))
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        raise DataError("cannot be read as a segmentation", path)
    node.CreateDefaultDisplayNodes()
    return node


def removeNodes(scene, *nodes) -> None:
    """Remove nodes with their display and storage nodes from the scene."""
    for node in nodes:
        if node is None or node.GetScene() is None:
            continue
        helpers = []
        if hasattr(node, "GetNumberOfDisplayNodes"):
            helpers += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
        if hasattr(node, "GetStorageNode"):
            helpers.append(node.GetStorageNode())
        scene.RemoveNode(node)
        for helper in helpers:
            if helper is not None and helper.GetScene() is not None:
                scene.RemoveNode(helper)


#: Work folders made by this process and not removed yet (removed at exit at the latest).
_workFolders: set[Path] = set()


def makeWorkFolder(prefix: str = "SAR-") -> Path:
    """A private temporary folder (Slicer's temporary directory when available).

    It is remembered until :func:`removeWorkFolder`; :func:`removeAllWorkFolders` runs
    when the module is cleaned up (Slicer quitting mid-job) and at interpreter exit.
    """
    import tempfile

    base = None
    with contextlib.suppress(Exception):
        base = slicer.app.temporaryPath  # only inside the Slicer application
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base if base and os.path.isdir(base)
                                   else None))
    _workFolders.add(folder)
    return folder


def removeWorkFolder(folder: str | Path) -> None:
    """Delete a work folder and everything in it (missing is fine)."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    _workFolders.discard(folder)


def removeAllWorkFolders() -> None:
    """Delete every work folder this process made and still holds."""
    for folder in list(_workFolders):
        removeWorkFolder(folder)


atexit.register(removeAllWorkFolders)
