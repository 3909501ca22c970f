"""Device choice with a plain message when CUDA is asked for but absent."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from SARCore.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when usable, else CPU; ``cuda``/``cuda:N``/``cpu`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("no usable CUDA device (torch reports none)",
                              hint="use --device cpu (and --fast for segmentation)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"device must be auto, cpu or cuda[:N], not {name!r}")


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
