"""Stop a diverging run at once: a NaN or infinite loss or weight is an error, not a model.

A run whose learning rate is far too high can overflow its weights while the loss of
the step that did it still looked finite; saving such weights would hand the user a
"model" that segments nothing. So the loss is checked before every backward pass and
the weights after every optimizer step, and the error names the step and the likely
cause (the data or the initial model when nothing was learned yet, the learning rate
after that).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from SARCore.errors import TrainingError


def _cause(step: int, lr: float | None) -> str:
    if step == 0:
        return ("before any update: the input data or the initial model gives non-finite "
                "values; check them")
    rate = f" (now {lr:g})" if lr is not None else ""
    return f"the training diverged; lower the learning rate{rate}"


def check_loss(loss: torch.Tensor, step: int, stage: str, lr: float | None = None) -> None:
    """Raise :class:`TrainingError` if ``loss`` is NaN or infinite."""
    if not bool(torch.isfinite(loss.detach()).all()):
        raise TrainingError(f"{stage} loss became {loss.detach().float().item()} at step "
                            f"{step}, so training stopped and no model was saved",
                            hint=_cause(step, lr))


def check_weights(parameters: Iterable[torch.Tensor], step: int, stage: str,
                  lr: float | None = None) -> None:
    """Raise :class:`TrainingError` if any weight is NaN or infinite (one device sync)."""
    norms = [p.detach().float().norm() for p in parameters if p.is_floating_point()]
    if norms and not bool(torch.isfinite(torch.stack(norms).sum())):
        raise TrainingError(f"{stage} weights became NaN or infinite at step {step}, so "
                            "training stopped and no model was saved", hint=_cause(step, lr))


def check_state(state: dict, what: str) -> None:
    """Raise :class:`TrainingError` if a state dict to be saved holds NaN/Inf tensors."""
    bad = [name for name, value in state.items() if isinstance(value, torch.Tensor)
           and value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        raise TrainingError(f"refusing to write a {what} with NaN or infinite weights "
                            f"({', '.join(bad[:3])})", hint=_cause(1, None))
