"""Whole-scan segmentation: read -> preprocess -> sliding window -> scan grid -> write.

:class:`Segmenter` holds a loaded model on its device and turns scans (one SimpleITK
image per input channel) into a label map on the first scan's own grid.
:func:`segment_cases` runs it over command-line inputs and writes, per case,
``<case_id>_label.nii.gz`` (or ``.nrrd``) and ``<case_id>.seg.nrrd``; a bad case is
reported and the others go on.

Memory (documented per stage in :mod:`~SARCore.inference.sliding_window`,
:mod:`~SARCore.inference.streamed` and :mod:`~SARCore.inference.backmap`): the network
runs on windows sized to a budget that counts the whole network's activations (``memory_gb``;
default a quarter of the available RAM, at most 3 GiB, so that a whole BraTS case at paper
width peaks under 4 GiB, or half the free GPU memory). The MG U-Net runs streamed (stage
by stage in slabs, about 180 B per window voxel at full width instead of 2 KB), so a BraTS
volume is one window: no overlap. The blended probabilities are float16 on the
preprocessed grid, and the decision back on the scan's grid is one class at a time.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from SARCore.config import check_choice, check_positive
from SARCore.errors import ConfigError, DataError
from SARCore.inference.backmap import labels_on_reference
from SARCore.inference.content import box_fraction, content_box, place_in_background
from SARCore.inference.model import SegmentationModel
from SARCore.inference.runtime import (
    MAX_TENSOR_ELEMENTS,
    Predictor,
    cap_batch_elements,
    cuda_free_bytes,
    enable_fixed_shape_tuning,
    pick_device,
    pick_precision,
    prepare_network,
)
from SARCore.inference.sliding_window import choose_window, sliding_window_predict
from SARCore.inference.streamed import StreamedUNet, stored_bytes, streamed_bytes
from SARCore.io.arrays import image_to_array
from SARCore.io.geometry import Geometry, grid_mismatch
from SARCore.models import UNet3D
from SARCore.preprocess.image import preprocess_image
from SARCore.preprocess.presets import Preset

log = logging.getLogger(__name__)

LABEL_FORMATS = ("nii.gz", "nrrd")
#: Activation bytes per window voxel and level-0 channel (fp32) of the plain forward pass,
#: measured on the fused MG U-Net: a 96^3 window at full width (64 channels) adds 1.56 GB,
#: 28 bytes; 32 for margin. (The streamed pass: SARCore.inference.streamed.)
BYTES_PER_VOXEL_CHANNEL = 32
#: Default activation budget: this fraction of the RAM available now, at most MAX_CPU_BUDGET
#: (with about 0.5 GiB of torch, model and volumes, a process peak under 4 GiB).
RAM_FRACTION, MAX_CPU_BUDGET = 0.25, 3 * 2**30
#: Least share of the budget left to the streamed pass's slabs when choosing the window.
MIN_WORK_FRACTION = 0.25
MAX_BATCH = 8
#: Out-of-memory retries per case (each halves the batch, then the window) before failing.
OOM_RETRIES = 3

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SegmentOptions:
    """How to run inference (the ``segment`` verb's options)."""

    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 (auto: bf16 where the hardware has it)
    fast: bool = False  # run at fast_spacing (coarser) for machines without a GPU
    fast_spacing: float = 2.0
    window: tuple[int, int, int] | None = None  # None: chosen from the memory budget
    overlap: float = 0.25
    batch_size: int | None = None  # None: as many windows as the budget holds (max 8)
    tta: bool = False  # average the 8 axis-flip combinations
    label_format: str = "nii.gz"
    overwrite: bool = False
    memory_gb: float | None = None  # activation budget; None: see module docstring
    channels_last: bool = True
    streamed: bool = True  # MG U-Net stage by stage in slabs (same result, less memory)
    probabilities: bool = False  # also write the probability (+ TTA disagreement) maps
    crop_to_content: bool = True  # skip the constant fill around the anatomy (inference.content)
    allow_outside_paths: bool = False  # a dataset.json may name files outside its folder

    def __post_init__(self) -> None:
        check_choice("label_format", self.label_format, LABEL_FORMATS)
        check_positive("fast_spacing", self.fast_spacing)
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"overlap must be in [0, 1), not {self.overlap!r}")
        if self.batch_size is not None:
            check_positive("batch_size", self.batch_size, integer=True)
        if self.memory_gb is not None:
            check_positive("memory_gb", self.memory_gb)
        if self.window is not None:
            window = tuple(int(w) for w in self.window)
            if len(window) != 3 or any(w < 8 or w % 8 for w in window):
                raise ConfigError(f"window must be 3 multiples of 8, not {self.window!r}",
                                  hint="the U-Net pools three times")
            object.__setattr__(self, "window", window)


class Segmenter:
    """A segmentation model prepared for inference on one device."""

    def __init__(self, model: SegmentationModel, options: SegmentOptions | None = None):
        self.model = model
        self.options = options or SegmentOptions()
        self.device = pick_device(self.options.device)
        self.autocast = pick_precision(self.options.precision, self.device)
        enable_fixed_shape_tuning(self.device)
        self.last_window: tuple[int, int, int] | None = None  # what the last case used
        self.last_batch = 0
        self.last_content_fraction = 1.0  # share of the last case's voxels the network saw
        net = prepare_network(model.net, self.device, self.options.channels_last)
        self.stream = (StreamedUNet(net, 0.0)
                       if self.options.streamed and isinstance(net, UNet3D) else None)
        self.predictor = Predictor(self.stream or net, model.activation, self.device,
                                   self.autocast,
                                   self.options.tta, self.options.channels_last)
        self.preset = fast_preset(model.preset, self.options.fast_spacing) \
            if self.options.fast else model.preset
        self.label_values = [c.label for c in model.classes]

    def segment(self, images: Sequence[sitk.Image], progress: Progress | None = None
                ) -> sitk.Image:
        """Label map on ``images[0]``'s grid; one image per input channel, header order."""
        probabilities, grid = self.probabilities(images, progress)
        return labels_on_reference(probabilities, grid, images[0], self.model.activation,
                                   self.label_values)

    def probabilities(self, images: Sequence[sitk.Image], progress: Progress | None = None
                      ) -> tuple[np.ndarray, Geometry]:
        """``(K, X, Y, Z)`` float16 probabilities on the preprocessed grid, and that grid."""
        whole, grid = self.prepare(images)
        box = content_box(whole, self.model.patch_size) if self.options.crop_to_content \
            else None
        self.last_content_fraction = box_fraction(box, whole.shape[1:])
        volume = whole if box is None else np.ascontiguousarray(whole[(slice(None), *box)])
        window, batch = self.plan(volume.shape[1:])
        for attempt in range(OOM_RETRIES + 1):
            log.info("grid %s, content %s (%.0f %% of the voxels), window %s, batch %d, %s",
                     grid.size, volume.shape[1:], 100 * self.last_content_fraction, window,
                     batch, "bf16" if self.autocast else "fp32")
            self.last_window, self.last_batch = window, batch
            try:
                probabilities = sliding_window_predict(
                    volume, self.predictor, self.model.out_channels, window,
                    self.options.overlap, batch, self.device, progress)
                if box is not None:
                    probabilities = place_in_background(probabilities, whole.shape[1:], box,
                                                        self.model.activation)
                return probabilities, grid
            except torch.cuda.OutOfMemoryError:
                if attempt == OOM_RETRIES or (batch == 1 and window == tuple(
                        self.model.patch_size)):
                    raise
                torch.cuda.empty_cache()
                window, batch = self.smaller_plan(volume.shape[1:], window, batch)
                log.warning("out of GPU memory; retrying with window %s, batch %d",
                            window, batch)
        raise AssertionError("unreachable")

    def smaller_plan(self, shape: Sequence[int], window: tuple[int, int, int], batch: int
                     ) -> tuple[tuple[int, int, int], int]:
        """After an out-of-memory error: half the batch, or else a window of half the
        voxels (never below the model's patch)."""
        if batch > 1:
            return window, batch // 2
        voxels = max(1, math.prod(window) // 2)
        return choose_window(shape, self.model.patch_size, self.options.overlap, voxels), 1

    def prepare(self, images: Sequence[sitk.Image]) -> tuple[np.ndarray, Geometry]:
        """Preprocessed ``(C, X, Y, Z)`` float32 input and its grid."""
        if len(images) != self.model.in_channels:
            names = ", ".join(self.model.sequences) or f"{self.model.in_channels} channels"
            raise DataError(f"the model expects {self.model.in_channels} input image(s) "
                            f"({names}), got {len(images)}")
        channels, grid = [], None
        for index, image in enumerate(images):
            prepared, _ = preprocess_image(image, self.preset)
            if grid is None:
                grid = Geometry.of(prepared)
            elif (mismatch := grid_mismatch(grid, Geometry.of(prepared))) is not None:
                raise DataError(f"input channel {index + 1} is not on the first one's grid "
                                f"({mismatch})", hint="register the sequences to each other")
            channels.append(image_to_array(prepared, np.float32))
        volume = channels[0][None] if len(channels) == 1 else np.stack(channels)
        return volume, grid  # type: ignore[return-value]

    def plan(self, shape: Sequence[int]) -> tuple[tuple[int, int, int], int]:
        """Window and batch size for a volume of ``shape`` within the memory budget."""
        if self.stream is not None:
            return self._plan_streamed(shape)
        per_voxel = BYTES_PER_VOXEL_CHANNEL * self.model.net.encoder_channels[0]
        budget_voxels = max(1, min(int(self.memory_budget() // per_voxel),
                                   MAX_TENSOR_ELEMENTS // self.model.net.encoder_channels[0]))
        window = self.options.window or choose_window(
            shape, self.model.patch_size, self.options.overlap, budget_voxels)
        batch = self.options.batch_size or max(1, min(MAX_BATCH,
                                                      budget_voxels // math.prod(window)))
        return window, cap_batch_elements(window, batch, self.model.net.encoder_channels[0])

    def _plan_streamed(self, shape: Sequence[int]) -> tuple[tuple[int, int, int], int]:
        """One window at a time; the largest-paying window whose stored tensors leave at
        least ``MIN_WORK_FRACTION`` of the budget to the slabs, which then get the rest."""
        budget, net = self.memory_budget(), self.stream.net  # type: ignore[union-attr]
        reserve = MIN_WORK_FRACTION * budget

        widest = self.model.net.encoder_channels[0]

        def fits(window: Sequence[int]) -> bool:  # memory, and 32-bit indexing in kernels
            return (math.prod(window) * widest <= MAX_TENSOR_ELEMENTS
                    and streamed_bytes(net, window, reserve) <= budget)

        window = self.options.window or choose_window(
            shape, self.model.patch_size, self.options.overlap, fits=fits)
        self.stream.work_bytes = max(reserve, budget - stored_bytes(net, window))  # type: ignore[union-attr]
        return window, self.options.batch_size or 1

    def memory_budget(self) -> float:
        """Bytes the network's activations may use."""
        if self.options.memory_gb is not None:
            return self.options.memory_gb * 2**30
        if self.device.type == "cuda":
            return 0.5 * cuda_free_bytes(self.device)
        return min(MAX_CPU_BUDGET, RAM_FRACTION * available_ram())


def fast_preset(preset: Preset, spacing: float) -> Preset:
    """``preset`` at no finer than ``spacing`` mm on every axis (8x fewer voxels at 2 mm)."""
    current = preset.target_spacing or (spacing, spacing, spacing)
    coarse = tuple(max(float(s), spacing) for s in current)
    return Preset.from_dict({**preset.to_dict(), "target_spacing": coarse})


def available_ram() -> float:
    """Bytes of physical memory available now (Linux), else total, else 8 GB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8.0 * 2**30
