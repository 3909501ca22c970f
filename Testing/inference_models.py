"""Helpers for the inference tests: real model files and real-scan crops.

Models are randomly initialised MG U-Nets (width_divisor 8) saved through the real
``make_header`` + ``save_model_file`` and read back through the real loader. A random
network's outputs hover around one value, so :func:`calibrated_model` shifts the head's
bias by the median logit on a real scan: about half of its voxels become foreground and
every test sees a non-trivial label map.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from SARCore.io.arrays import image_to_array
from SARCore.models import UNet3D, make_header, save_model_file
from SARCore.preprocess import get_preset, preprocess_image

DEFAULT_CLASSES = [{"name": "tumor", "label": 1, "color": [0.9, 0.2, 0.1]}]


def crop_to_file(source: Path, target: Path, start: Sequence[int], size: Sequence[int]) -> Path:
    """A real sub-volume (physical position kept) written as its own file."""
    image = sitk.ReadImage(str(source))
    sitk.WriteImage(sitk.RegionOfInterest(image, [int(s) for s in size],
                                          [int(s) for s in start]), str(target))
    return target


def header_for(*, in_channels: int = 1, out_channels: int = 1, preset: str = "brats",
               spacing: Sequence[float] | None = None, sequences: Sequence[str] = ("flair",),
               modalities: Sequence[str] = ("MRI",), classes: list | None = None,
               activation: str | None = None, **extra) -> dict:
    fields = dict(
        name="test-seg", task="segmentation", architecture="mg_unet3d", width_divisor=8,
        in_channels=in_channels, out_channels=out_channels, input_size=[64, 64, 32],
        method="scratch", patch_size=[64, 64, 32],
        preprocess=get_preset(preset, target_spacing=spacing).to_dict(),
        classes=DEFAULT_CLASSES if classes is None else classes, sequences=list(sequences),
        modalities=list(modalities))
    fields.update(extra)
    if activation is not None:
        fields["output_activation"] = activation
    return make_header(**fields)


def calibrated_model(path: Path, sample: Sequence[Path] | None = None, seed: int = 0,
                     **header_fields) -> Path:
    """Save a random model whose head bias puts the median voxel of ``sample`` on the fence."""
    header = header_for(**header_fields)
    torch.manual_seed(seed)
    net = UNet3D(header["in_channels"], header["out_channels"], 8).eval()
    if sample:
        _calibrate(net, sample, header)
    save_model_file(path, net.state_dict(), header)
    return path


def _calibrate(net: UNet3D, sample: Sequence[Path], header: dict) -> None:
    from SARCore.preprocess.presets import Preset

    preset = Preset.from_dict({**header["preprocess"], "min_shape": (1, 1, 1)})
    channels = [image_to_array(preprocess_image(sitk.ReadImage(str(p)), preset)[0])
                for p in sample]
    volume = np.stack(channels)
    pad = [(0, 0)] + [(0, (-n) % 8) for n in volume.shape[1:]]
    with torch.inference_mode():
        logits = net(torch.from_numpy(np.pad(volume, pad, mode="edge"))[None])[0]
    with torch.no_grad():
        if header["out_channels"] == 1:
            net.head.bias -= logits[0].median()
        else:
            for k in range(1, header["out_channels"]):
                net.head.bias[k] -= (logits[k] - logits[0]).median()
