"""Base of the transforms' parameter records: frozen dataclasses of tensors."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import torch

P = TypeVar("P", bound="TensorParams")


class TensorParams:
    """Mixin for dataclasses whose fields all have ``.to(device)`` (tensors or params)."""

    def to(self: P, device: torch.device | str) -> P:
        """The same parameters on ``device`` (fields already there are not copied)."""
        moved: dict[str, Any] = {field.name: getattr(self, field.name).to(device)
                                 for field in dataclasses.fields(self)}  # type: ignore[arg-type]
        return dataclasses.replace(self, **moved)  # type: ignore[type-var]
