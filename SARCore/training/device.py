"""Device choice with a plain message when CUDA is asked for but absent."""

from __future__ import annotations

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
