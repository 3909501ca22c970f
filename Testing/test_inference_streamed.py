"""Streamed U-Net inference: the plain forward's result, in the memory the plan counts on."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from inference_models import calibrated_model, crop_to_file, header_for

from SARCore.inference import Segmenter, SegmentOptions, load_segmentation_model
from SARCore.inference.runtime import prepare_network
from SARCore.inference.streamed import StreamedUNet, streamed_bytes
from SARCore.models import UNet3D, save_model_file

REPO = Path(__file__).resolve().parents[1]
CL = torch.channels_last_3d


def _net(out_channels: int = 2, divisor: int = 8) -> torch.nn.Module:
    torch.manual_seed(0)
    net = UNet3D(1, out_channels, divisor).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm3d):  # not the identity once fused
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return prepare_network(net, torch.device("cpu"))


@pytest.mark.parametrize("work_bytes", [1.0, 3e5, 1e10])  # 2-plane slabs ... one slab
def test_streamed_forward_equals_the_plain_forward(work_bytes) -> None:
    net = _net()
    x = torch.randn(1, 1, 48, 40, 24).contiguous(memory_format=CL)
    with torch.inference_mode():
        expected = net(x)
        streamed = StreamedUNet(net, work_bytes)(x)
    assert streamed.shape == expected.shape == (1, 2, 48, 40, 24)
    assert float(expected.std()) > 1e-3  # not a flat output that anything would match
    torch.testing.assert_close(streamed, expected, rtol=1e-5, atol=1e-6)


def test_streamed_forward_refuses_sides_that_do_not_pool() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        StreamedUNet(_net(), 1e9)(torch.zeros(1, 1, 20, 16, 16))


@pytest.fixture(scope="module")
def flair_crop(tmp_path_factory, brats_flair) -> Path:
    folder = tmp_path_factory.mktemp("flair")
    return crop_to_file(brats_flair, folder / "pat1_flair.nii.gz", (48, 80, 40), (80, 88, 48))


def test_segmenter_streams_one_window_with_the_plain_result(tmp_path, flair_crop) -> None:
    model = load_segmentation_model(calibrated_model(tmp_path / "m.sarmodel", [flair_crop]))
    image = [sitk.ReadImage(str(flair_crop))]
    streamed = Segmenter(model, SegmentOptions(device="cpu"))
    plain = Segmenter(model, SegmentOptions(device="cpu", streamed=False, window=(80, 88, 48)))
    volume, _ = streamed.prepare(image)
    assert streamed.plan(volume.shape[1:]) == ((80, 88, 48), 1)  # the whole crop, once
    ours, _ = streamed.probabilities(image)
    reference, _ = plain.probabilities(image)
    assert 0.05 < float((ours > 0.5).mean()) < 0.95
    np.testing.assert_allclose(ours.astype(np.float32), reference.astype(np.float32),
                               atol=2e-3)


def test_default_plan_puts_a_brats_volume_in_one_window_under_3_gib(tmp_path) -> None:
    header = header_for(width_divisor=1)
    path = save_model_file(tmp_path / "paper.sarmodel", UNet3D(1, 1, 1).state_dict(), header)
    model = load_segmentation_model(path)
    roomy = Segmenter(model, SegmentOptions(device="cpu", memory_gb=3.0))
    window, batch = roomy.plan((240, 240, 155))
    assert (window, batch) == ((240, 240, 160), 1)
    assert streamed_bytes(roomy.stream.net, window, roomy.stream.work_bytes) <= 3 * 2**30
    tight = Segmenter(model, SegmentOptions(device="cpu", memory_gb=0.75))
    window, _ = tight.plan((240, 240, 155))
    assert math.prod(window) < 240 * 240 * 160 and all(w % 8 == 0 for w in window)
    assert streamed_bytes(tight.stream.net, window, tight.stream.work_bytes) <= 0.75 * 2**30


PEAK_SCRIPT = r"""
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from SARCore.inference.runtime import prepare_network
from SARCore.inference.streamed import StreamedUNet, streamed_bytes
from SARCore.models import UNet3D

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

torch.set_num_threads(1)
torch.manual_seed(0)
net = prepare_network(UNet3D(1, 1, 2).eval(), torch.device("cpu"))
shape, work = (128, 128, 64), 96e6
forward = net if sys.argv[2] == "plain" else StreamedUNet(net, work)
with torch.inference_mode():
    forward(torch.randn(1, 1, 16, 16, 16).contiguous(memory_format=torch.channels_last_3d))
    x = torch.randn(1, 1, *shape).contiguous(memory_format=torch.channels_last_3d)
    before = status("VmRSS:")
    out = forward(x)
    peak = status("VmHWM:")
print(json.dumps({"added": peak - before, "estimate": streamed_bytes(net, shape, work)}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_streamed_peak_memory_stays_within_the_estimate() -> None:
    """Measured in fresh processes: what the forward adds to the resident set at its peak.

    The estimate counts tensors; oneDNN's primitive caches and the allocator add a fixed
    amount on top (about 80 MB here), which is why the default CPU budget (3 GiB) stays
    well under the 4 GiB goal. Width 1/2: at 1/8 the narrow convolutions take PyTorch's
    im2col path, whose unfolded copies are not what the paper-width network does."""
    runs = {}
    for mode in ("streamed", "plain"):
        done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(REPO), mode],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    streamed, plain = runs["streamed"], runs["plain"]
    assert streamed["added"] <= streamed["estimate"] + 128 * 2**20, runs
    assert plain["added"] > 2.5 * streamed["added"], runs  # what streaming saves


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_streamed_forward_on_cuda_in_bf16_matches_fp32() -> None:
    net = _net(1, 1).cuda()
    x = torch.randn(1, 1, 96, 96, 64, device="cuda").contiguous(memory_format=CL)
    with torch.inference_mode():
        expected = net(x)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            streamed = StreamedUNet(net, 2**28)(x).float()
    assert float((streamed - expected).abs().max()) < 0.05 * float(expected.abs().max())
