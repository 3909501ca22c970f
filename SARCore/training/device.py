"""Device choice with a plain message when CUDA is asked for but absent."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from SARCore.errors import ConfigError


def mps_available() -> bool:
    """Whether torch can use an Apple GPU (Metal Performance Shaders) here."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when usable, else CPU; ``cuda``/``cuda:N``/``mps``/``cpu`` as given.

    ``auto`` never picks ``mps``: some 3D operations are missing there, so an Apple GPU
    is used only when asked for.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("no usable CUDA device (torch reports none)",
                              hint="use --device cpu (and --fast for segmentation)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not mps_available():
            raise ConfigError("no usable Apple GPU (torch reports MPS unavailable: it needs "
                              "Apple silicon, macOS 12.3+ and a torch build with MPS)",
                              hint="use --device cpu (and --fast for segmentation)")
        return torch.device("mps")
    raise ConfigError(f"device must be auto, cpu, cuda[:N] or mps, not {name!r}")


def unsupported_on_device(exc: BaseException, device: torch.device) -> ConfigError | None:
    """A clear error for an operation the device lacks (MPS misses some 3D operators),
    or ``None`` when ``exc`` is something else."""
    text = str(exc)
    if device.type != "mps" or isinstance(exc, torch.OutOfMemoryError) or not isinstance(
            exc, (NotImplementedError, RuntimeError)) or "mps" not in text.lower():
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ConfigError(f"an operation is not supported on the Apple GPU (MPS): {first}",
                       hint="run with --device cpu")


@functools.lru_cache(maxsize=4)
def bf16_is_native(device: torch.device) -> bool:
    """Whether bf16 autocast pays off on ``device``: on CUDA when the card has bf16; on a
    CPU only with AVX512-BF16 or AMX (Linux ``/proc/cpuinfo`` flags). Elsewhere (an
    AVX2-only EPYC, say) oneDNN falls back to bf16 convolutions about 70x slower than
    fp32 (bench/RESULTS.md), which turns a demo into an afternoon."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def to_channels_last(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` in channels_last_3d, except kernels that are contiguous as well (1x1x1,
    one input channel), which get the plain contiguous strides.

    For a 1x1x1 kernel (or one input channel) both layouts hold the same bytes, but the
    strides differ and autograd returns its gradient with the contiguous ones; under DDP that mismatch with the bucket view
    ("Grad strides do not match bucket view strides") costs a copy every step.
    """
    module = module.to(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        for param in module.parameters():
            if param.ndim == 5 and param.is_contiguous() and param.stride() != _contiguous_strides(
                    param.shape):
                # .contiguous() keeps these strides (size-1 dims count as contiguous)
                param.data = torch.empty(param.shape, dtype=param.dtype,
                                         device=param.device).copy_(param.data)
    return module


def _contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))
