"""Whole-volume segmentation with a fine-tuned model file.

* :mod:`~SARCore.inference.model`          - model file -> :class:`SegmentationModel`,
* :mod:`~SARCore.inference.content`        - the box around the anatomy (outside: background),
* :mod:`~SARCore.inference.sliding_window` - batched windows, Gaussian blending, bounded memory,
* :mod:`~SARCore.inference.runtime`        - device, precision, fused layers, flip TTA,
* :mod:`~SARCore.inference.segment`        - :class:`Segmenter`: scans -> label map,
* :mod:`~SARCore.inference.backmap`        - probabilities -> labels on the scan's own grid,
* :mod:`~SARCore.inference.seg_nrrd`       - 3D Slicer ``.seg.nrrd`` writer,
* :mod:`~SARCore.inference.cases`          - inputs -> cases matched to the model's sequences,
* :mod:`~SARCore.inference.batch`          - :func:`segment_cases`: a folder of scans -> files.
"""

from SARCore.inference.batch import SegmentReport, output_paths, segment_cases
from SARCore.inference.model import SegmentationModel, SegmentClass, load_segmentation_model
from SARCore.inference.seg_nrrd import write_seg_nrrd
from SARCore.inference.segment import Segmenter, SegmentOptions
from SARCore.inference.sliding_window import gaussian_weights, sliding_window_predict

__all__ = ["SegmentClass", "SegmentOptions", "SegmentReport", "SegmentationModel", "Segmenter",
           "gaussian_weights", "load_segmentation_model", "output_paths", "segment_cases",
           "sliding_window_predict", "write_seg_nrrd"]
