"""One scan through a preset: the pure function the batch pipeline and inference share.

Order of steps, as the paper gives it (sec. 3.1): resample, clip (which also removes the
B-spline's overshoot), normalise. For the z-score preset the brain region (the case's
brain mask, else every voxel unlike the border's constant: :mod:`.brain`) is taken from
the source scan and resampled with nearest neighbour, so background is exactly 0 after
interpolation whatever value it had in the source.

The arrays here are SimpleITK's own ``[z, y, x]`` buffers (spacing and size reversed to
match): every step is per voxel or per axis, and skipping the ``[x, y, z]`` transposed
copies saves about a second per large CT.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from SARCore.errors import DataError
from SARCore.io.geometry import SPACING_RTOL, Geometry, grid_mismatch
from SARCore.preprocess import intensity
from SARCore.preprocess.brain import brain_region
from SARCore.preprocess.presets import Preset
from SARCore.preprocess.resample import resample_array

#: More voxels than any real scan resampled at 0.5 mm (a 50 cm cube is 1e9): a header or
#: option must be wrong.
MAX_VOXELS = 2e9


def target_geometry(geometry: Geometry, preset: Preset) -> Geometry:
    """The output grid: same origin, direction and extent, at the preset's spacing."""
    if preset.target_spacing is None:
        return geometry
    spacing, target = np.array(geometry.spacing), np.array(preset.target_spacing)
    if np.all(np.abs(spacing - target) <= SPACING_RTOL * target):
        return geometry  # already there: no resampling, no interpolation blur
    return geometry.with_spacing(preset.target_spacing)


def preprocess_image(image: sitk.Image, preset: Preset, label: sitk.Image | None = None,
                     brain_mask: sitk.Image | None = None
                     ) -> tuple[sitk.Image, sitk.Image | None]:
    """``image`` (and its ``label``) resampled and normalised by ``preset``.

    Returns a float32 image on the preset's grid and an integer label on the same grid
    (nearest neighbour), or ``None``. ``brain_mask`` (on the image's grid) gives the
    z-score's region; other normalisations ignore it. Raises :class:`DataError` (without a file name) for
    a volume smaller than ``preset.min_shape`` at the target spacing, a label on another
    grid, or intensities that cannot be normalised. The inputs are not modified.
    """
    source = Geometry.of(image)
    target = target_geometry(source, preset)
    check_size(source, target, preset)
    if label is not None:
        check_label_grid(image, label)
    values = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    inside = None
    if preset.normalization == "zscore_nonzero":
        inside = brain_region(values, _mask_array(image, brain_mask))
    if target != source:
        values = _resample_zyx(values, source, target, preset.interpolation)
        if inside is not None:
            inside = _resample_zyx(inside, source, target, "nearest")
    if preset.clip is not None:
        intensity.clip(values, *preset.clip)
    _normalise(values, inside, preset)
    out = target.apply(sitk.GetImageFromArray(values))
    return out, None if label is None else preprocess_label(label, source, target, preset)


def _mask_array(image: sitk.Image, mask: sitk.Image | None) -> np.ndarray | None:
    if mask is None:
        return None
    mismatch = grid_mismatch(Geometry.of(image), Geometry.of(mask))
    if mismatch:
        raise DataError(f"brain mask grid does not match its image: {mismatch}",
                        hint="the brain mask must be on the image's voxel grid")
    return sitk.GetArrayViewFromImage(mask)


def check_label_grid(image: sitk.Image, label: sitk.Image) -> None:
    """Refuse a label whose voxel grid differs from its image's beyond tolerance."""
    mismatch = grid_mismatch(Geometry.of(image), Geometry.of(label))
    if mismatch:
        raise DataError(f"label grid does not match its image: {mismatch}",
                        hint="the label must be drawn on the image's voxel grid")


def check_size(source: Geometry, target: Geometry, preset: Preset) -> None:
    """Refuse volumes that end up smaller than ``preset.min_shape`` voxels, or so large
    that the spacing must be wrong (say so, rather than run out of memory later)."""
    voxels = float(np.prod([float(n) for n in target.size]))
    if voxels > MAX_VOXELS:
        raise DataError(
            f"resampling to {_shape(target.spacing)} mm would give {_shape(target.size)} "
            f"voxels ({voxels:.3g}): the scan's spacing {_shape(source.spacing)} mm or its "
            f"size {_shape(source.size)} is implausible", hint="check the voxel spacing in "
            "the file's header, or choose a coarser --spacing")
    if any(n < m for n, m in zip(target.size, preset.min_shape)):
        raise DataError(
            f"volume is too small: {_shape(target.size)} voxels at "
            f"{_shape(target.spacing)} mm (from {_shape(source.size)} at "
            f"{_shape(source.spacing)} mm), smaller than {_shape(preset.min_shape)}",
            hint="a cube needs at least that many voxels; use a finer --spacing or "
                 "drop this scan")


def preprocess_label(label: sitk.Image, source: Geometry, target: Geometry,
                     preset: Preset) -> sitk.Image:
    """Label values remapped by ``preset.label_map`` and moved to ``target`` (nearest)."""
    values = sitk.GetArrayFromImage(label)
    if preset.label_map:
        lookup = np.arange(max(int(values.max()), *(a for a, _ in preset.label_map)) + 1)
        for old, new in preset.label_map:
            lookup[old] = new
        values = lookup[values]
    if target != source:
        values = _resample_zyx(values, source, target, "nearest")
    dtype = np.uint8 if values.max() < 256 else np.uint16 if values.max() < 65536 else np.int32
    return target.apply(sitk.GetImageFromArray(values.astype(dtype, copy=False)))


def _resample_zyx(values: np.ndarray, source: Geometry, target: Geometry,
                  kind: str) -> np.ndarray:
    return resample_array(values, source.spacing[::-1], target.spacing[::-1],
                          target.size[::-1], kind)


def _normalise(values: np.ndarray, inside: np.ndarray | None, preset: Preset) -> None:
    if preset.normalization == "minmax":
        intensity.minmax(values)
    elif preset.normalization == "zscore_nonzero":
        intensity.zscore_nonzero(values, inside)
    else:
        intensity.affine(values, preset.shift, preset.scale)


def _shape(values: tuple) -> str:
    return "x".join(f"{v:g}" for v in values)
