"""Where and how the network runs: device, precision, fused layers, flip averaging.

Speed-ups that leave the result unchanged up to rounding:

* Conv3d + BatchNorm3d folded into one convolution (eval-mode batch norm is an affine map
  per channel), which saves a full pass over every activation;
* ``channels_last_3d`` memory layout (oneDNN/cuDNN convolutions run without reorders);
* ``torch.inference_mode`` (no autograd bookkeeping);
* bfloat16 autocast where the hardware has bf16 arithmetic (CUDA with bf16, CPUs with
  AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower, so "auto" keeps float32.
"""

from __future__ import annotations

import copy
import itertools
import logging
import re

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from SARCore.config import check_choice
from SARCore.training.device import bf16_is_native, resolve_device

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without one is an error.
    ``cuda:N`` as in every other verb (``SARCore.cli.options``)."""
    if not re.fullmatch(r"cuda:\d+", str(name)):
        check_choice("device", name, DEVICES)
    return resolve_device(name)


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (``torch.bfloat16``) or ``None`` for plain float32."""
    check_choice("precision", name, PRECISIONS)
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if bf16_is_native(device) else None


def fuse_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of ``net`` (eval mode) with each Conv3d -> BatchNorm3d pair folded into one conv."""
    fused = copy.deepcopy(net).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, norm = module[index], module[index + 1]
            if isinstance(conv, nn.Conv3d) and isinstance(norm, nn.BatchNorm3d):
                module[index] = fuse_conv_bn_eval(conv, norm)
                module[index + 1] = nn.Identity()
    return fused


def prepare_network(net: nn.Module, device: torch.device,
                    channels_last: bool = True) -> nn.Module:
    """Fused, eval-mode copy of ``net`` on ``device`` in the chosen memory layout."""
    fused = fuse_batchnorm(net).to(device)
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last_3d)
    return fused


class Predictor:
    """``(B, C, X, Y, Z)`` float32 -> ``(B, K, X, Y, Z)`` probabilities, flips averaged.

    With ``tta`` the batch is also run mirrored along every subset of the three axes
    (8 passes) and the un-mirrored probabilities are averaged.
    """

    def __init__(self, net: nn.Module, activation: str, device: torch.device,
                 autocast: torch.dtype | None = None, tta: bool = False,
                 channels_last: bool = True):
        self.net, self.activation, self.device = net, activation, device
        self.autocast, self.channels_last = autocast, channels_last
        self.flips = ([axes for r in range(4) for axes in itertools.combinations((2, 3, 4), r)]
                      if tta else [()])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        total = None
        with torch.inference_mode():
            for axes in self.flips:
                inputs = torch.flip(batch, axes) if axes else batch
                probabilities = self._probabilities(inputs)
                probabilities = torch.flip(probabilities, axes) if axes else probabilities
                total = probabilities if total is None else total.add_(probabilities)
            return total / len(self.flips)

    def _probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(self.device.type, dtype=self.autocast or torch.bfloat16,
                            enabled=self.autocast is not None):
            logits = self.net(inputs)
        logits = logits.float()
        if self.activation == "sigmoid":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=1)


#: Largest element count per tensor: 32-bit indexing in some cuDNN/CPU kernels breaks
#: (or silently falls back to slow paths) at 2**31 elements.
MAX_TENSOR_ELEMENTS = 2**31 - 1


def cuda_free_bytes(device: torch.device) -> int:
    """Memory this process can still use on ``device``: what the driver reports free plus
    PyTorch's cached but unused blocks (``mem_get_info`` alone misses those, so the tenth
    case of a batch would get a smaller window than the first)."""
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + max(0, cached))


def cap_batch_elements(window: tuple[int, int, int], batch: int, channels: int
                       ) -> int:
    """The largest batch <= ``batch`` whose widest activation (``batch x channels x
    window``) stays within :data:`MAX_TENSOR_ELEMENTS`; at least 1."""
    per_window = channels * window[0] * window[1] * window[2]
    return max(1, min(batch, MAX_TENSOR_ELEMENTS // max(1, per_window)))


def enable_fixed_shape_tuning(device: torch.device) -> None:
    """Let cuDNN pick the fastest convolution algorithms: sliding-window inference feeds
    one window shape over and over, so the one-time search pays off."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
