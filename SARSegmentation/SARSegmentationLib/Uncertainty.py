"""Correction guided by uncertainty: where the model hesitated, shown and listed.

The engine's ``--probabilities`` map (and, with ``--tta``, its flip-disagreement map) is
loaded as a volume, shown as a coloured overlay over the input, and turned into a list
of the largest connected regions where the model is unsure; :class:`RegionNavigator`
moves the slice views to one region after another, so a reader fixes the doubtful parts
first instead of scrolling through every slice. All of it works on MRML alone (headless).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import slicer

#: Colour maps to try, best first (the PET rainbow is not in every Slicer build).
OVERLAY_COLORS = ("vtkMRMLColorTableNodeRainbow", "vtkMRMLColorTableNodeFullRainbow")
#: A voxel is "uncertain" from this score on (probability within 0.25..0.75).
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Region:
    """One connected uncertain region: size and where to look (RAS, mm)."""

    voxels: int
    volumeMl: float
    centerRAS: tuple[float, float, float]
    meanScore: float

    def describe(self) -> str:
        r, a, s = self.centerRAS
        return (f"{self.volumeMl:.2f} mL, mean uncertainty {self.meanScore:.2f} "
                f"at R {r:.0f} A {a:.0f} S {s:.0f}")


def uncertaintyScore(values: np.ndarray, kind: str = "probability") -> np.ndarray:
    """0 (sure) .. 1 (unsure): ``1 - |2p - 1|`` for a probability, ``2 d`` for a flip
    disagreement ``d`` (a standard deviation of values in 0..1, at most 0.5)."""
    values = values.astype(np.float32)
    if kind == "disagreement":
        return np.clip(2.0 * values, 0.0, 1.0)
    return 1.0 - np.abs(2.0 * np.clip(values, 0.0, 1.0) - 1.0)


def showOverlay(volumeNode, kind: str = "probability") -> None:
    """Colour the map 0..1 with a rainbow table (low values transparent over the input)."""
    volumeNode.CreateDefaultDisplayNodes()
    display = volumeNode.GetDisplayNode()
    scene = volumeNode.GetScene()
    for colorId in OVERLAY_COLORS:
        if scene.GetNodeByID(colorId) is not None:
            display.SetAndObserveColorNodeID(colorId)
            break
    display.SetAutoWindowLevel(False)
    top = 0.5 if kind == "disagreement" else 1.0
    display.SetWindowLevelMinMax(0.0, top)
    display.SetApplyThreshold(True)
    display.SetLowerThreshold(0.05 * top)
    display.SetUpperThreshold(top)
    volumeNode.SetAttribute("SAR.uncertaintyKind", kind)


def uncertainRegions(volumeNode, kind: str | None = None,
                     threshold: float = DEFAULT_THRESHOLD, limit: int = 10,
                     minVoxels: int = 1) -> list[Region]:
    """The ``limit`` largest connected regions whose score is at least ``threshold``."""
    kind = kind or volumeNode.GetAttribute("SAR.uncertaintyKind") or "probability"
    score = uncertaintyScore(slicer.util.arrayFromVolume(volumeNode), kind)  # [k, j, i]
    mask = sitk.GetImageFromArray((score >= threshold).astype(np.uint8))
    components = sitk.RelabelComponent(sitk.ConnectedComponent(mask, True),
                                       minimumObjectSize=max(1, int(minVoxels)))
    labels = sitk.GetArrayFromImage(components)
    count = int(labels.max())
    if count == 0:
        return []
    spacing = volumeNode.GetSpacing()
    voxelMl = float(np.prod(spacing)) / 1000.0
    ijkToRas = _ijkToRas(volumeNode)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sums = np.bincount(labels.ravel(), weights=score.ravel(), minlength=count + 1)
    regions = []
    for label in range(1, min(count, limit) + 1):  # RelabelComponent sorts by size
        k, j, i = np.nonzero(labels == label)
        center = ijkToRas @ np.array([i.mean(), j.mean(), k.mean(), 1.0])
        regions.append(Region(int(sizes[label]), float(sizes[label]) * voxelMl,
                              (float(center[0]), float(center[1]), float(center[2])),
                              float(sums[label] / sizes[label])))
    return regions


def _ijkToRas(volumeNode) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


class RegionNavigator:
    """Moves every slice view to the next region on each :meth:`next` (wrapping)."""

    def __init__(self, scene, regions: list[Region]) -> None:
        self.scene, self.regions, self.index = scene, list(regions), -1

    def next(self) -> Region | None:
        if not self.regions:
            return None
        self.index = (self.index + 1) % len(self.regions)
        region = self.regions[self.index]
        slicer.vtkMRMLSliceNode.JumpAllSlices(self.scene, *region.centerRAS)
        return region
