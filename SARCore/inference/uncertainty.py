"""Per-voxel confidence of a segmentation, for correction guided by uncertainty.

``sar segment --probabilities`` writes, beside each label map, the probability that a
voxel belongs to any foreground class (``<case>_probability.nii.gz``, float32 in 0..1,
on the scan's own grid). With ``--tta`` it also writes how much the 8 axis-flip
predictions disagree (``<case>_disagreement.nii.gz``: the standard deviation of that
probability over the flips, 0..0.5). A reader corrects fastest where the model hesitated
(probability near 0.5) or contradicts itself under mirroring: the Slicer module shows
both as a colour overlay and lists their largest connected regions.

The flip spread is computed inside the sliding window, as one extra output channel that
is blended with the same Gaussian weights as the probabilities, so it costs no second
pass over the scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from SARCore.inference.backmap import labels_on_reference
from SARCore.inference.runtime import Predictor
from SARCore.inference.sliding_window import sliding_window_predict
from SARCore.io.arrays import array_to_image, image_to_array
from SARCore.io.geometry import Geometry, grid_mismatch


class SpreadPredictor:
    """A :class:`Predictor` whose output gets one more channel: the standard deviation of
    the foreground probability over the flips (``(B, K + 1, X, Y, Z)``)."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        inner = self.predictor
        total, foregrounds = None, []
        with torch.inference_mode():
            for axes in inner.flips:
                inputs = torch.flip(batch, axes) if axes else batch
                probabilities = inner._probabilities(inputs)
                probabilities = torch.flip(probabilities, axes) if axes else probabilities
                foregrounds.append(foreground(probabilities, inner.activation, dim=1).clone())
                total = probabilities if total is None else total.add_(probabilities)
            mean = total / len(inner.flips)
            spread = torch.stack(foregrounds).std(dim=0, correction=0)
            return torch.cat([mean, spread[:, None]], dim=1)


def foreground(probabilities, activation: str, dim: int = 0):
    """Probability of any foreground class: the sigmoid channel, or 1 - background."""
    index = [slice(None)] * probabilities.ndim
    index[dim] = 0
    first = probabilities[tuple(index)]
    return first if activation == "sigmoid" else 1 - first


@dataclass
class SegmentationWithConfidence:
    """A label map and its confidence maps, all on the scan's own grid."""

    labels: sitk.Image
    probability: sitk.Image
    disagreement: sitk.Image | None = None


def segment_with_confidence(segmenter, images: Sequence[sitk.Image],
                            progress=None) -> SegmentationWithConfidence:
    """What :meth:`Segmenter.segment` returns, plus the probability (and, with TTA, the
    flip disagreement) maps on ``images[0]``'s grid."""
    model, options = segmenter.model, segmenter.options
    volume, grid = segmenter.prepare(images)
    window, batch = segmenter.plan(volume.shape[1:])
    tta = len(segmenter.predictor.flips) > 1
    predictor = SpreadPredictor(segmenter.predictor) if tta else segmenter.predictor
    channels = model.out_channels + (1 if tta else 0)
    blended = sliding_window_predict(volume, predictor, channels, window, options.overlap,
                                     batch, segmenter.device, progress)
    probabilities = blended[:model.out_channels]
    reference = images[0]
    labels = labels_on_reference(probabilities, grid, reference, model.activation,
                                 segmenter.label_values)
    probability = on_reference(
        foreground(probabilities.astype(np.float32), model.activation), grid, reference)
    disagreement = on_reference(blended[-1].astype(np.float32), grid, reference) if tta else None
    return SegmentationWithConfidence(labels, probability, disagreement)


def on_reference(values: np.ndarray, grid: Geometry, reference: sitk.Image) -> sitk.Image:
    """An ``(X, Y, Z)`` map on ``grid`` as a float32 image on ``reference``'s grid (linear)."""
    if grid_mismatch(Geometry.of(reference), grid) is None:
        return array_to_image(np.clip(values, 0.0, 1.0).astype(np.float32), reference)
    source = grid.apply(array_to_image(values.astype(np.float32)))
    out = sitk.Resample(source, reference, sitk.Transform(), sitk.sitkLinear, 0.0,
                        sitk.sitkFloat32, True)
    return array_to_image(np.clip(image_to_array(out), 0.0, 1.0), reference)
