"""Whole-volume prediction from a window-sized network: batched windows, Gaussian blending.

The volume is covered by windows whose start positions are evenly spaced along each axis
(neighbours overlap by at least ``overlap`` of the window side). Each window's class
probabilities are weighted by a Gaussian that peaks at the window centre (sigma = 1/8 of
the side, as nnU-Net and MONAI) because a convolutional network is least reliable near
the borders of its input, where zero padding stands in for the missing context.

Memory stays bounded on large volumes: windows are visited slab by slab along the last
axis (z), and only one slab of float32 accumulators (the window's z side plus one step)
is alive at a time. Voxels no later window can reach are finalised (divided by the sum of
weights) into the float16 result. Peak memory besides the network's activations is::

    input    C x X x Y x Z x 4 bytes (float32, the caller's array)
    result   K x X x Y x Z x 2 bytes (float16 probabilities)
    slab     (K + 1) x X x Y x (wz + step) x 4 bytes (float32 accumulators)

e.g. a 512 x 512 x 400 CT at its own spacing with one output channel: 420 MB input,
210 MB result, about 60 MB of slab for a 32-slice window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: Gaussian sigma as a fraction of the window side (nnU-Net, MONAI).
SIGMA_SCALE = 0.125
#: Weights below this fraction of the peak are raised to it, so corners still count.
MIN_WEIGHT = 1e-3
#: Window sides are multiples of this (three 2x poolings in the U-Net).
SIDE_MULTIPLE = 8

Shape3 = tuple[int, int, int]


def gaussian_weights(window: Sequence[int], sigma_scale: float = SIGMA_SCALE) -> np.ndarray:
    """``(wx, wy, wz)`` float32 importance map: 1 at the centre, ``MIN_WEIGHT`` at worst."""
    axes = []
    for side in window:
        position = np.arange(side, dtype=np.float64) - (side - 1) / 2.0
        sigma = max(side * sigma_scale, 1e-6)
        axes.append(np.exp(-0.5 * (position / sigma) ** 2))
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    weights /= weights.max()
    return np.maximum(weights, MIN_WEIGHT).astype(np.float32)


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Evenly spaced window starts covering ``[0, size)``; neighbours overlap >= ``overlap``."""
    if window >= size:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    count = math.ceil((size - window) / step) + 1
    return sorted({int(round(v)) for v in np.linspace(0, size - window, count)})


def round_up(value: int, multiple: int = SIDE_MULTIPLE) -> int:
    return int(math.ceil(value / multiple) * multiple)


def choose_window(shape: Sequence[int], patch: Sequence[int], overlap: float,
                  max_voxels: int | None = None,
                  fits: Callable[[Shape3], bool] | None = None) -> Shape3:
    """The window (sides multiples of 8, at least ``patch``) that needs the least compute.

    A larger window means fewer voxels computed twice in the overlaps, so for each axis we
    try 1, 2, 3... windows sized to just cover it, and keep the combination with the
    fewest voxels evaluated in total whose window fits the memory budget: ``fits(window)``
    when given (the budget of the whole network's activations), else at most
    ``max_voxels`` voxels. Falls back to ``patch`` when even that exceeds the budget.
    """
    if fits is None:
        limit = math.inf if max_voxels is None else max_voxels

        def fits(sides: Shape3) -> bool:
            return math.prod(sides) <= limit

    options = [_axis_options(n, p, overlap) for n, p in zip(shape, patch)]
    best, best_cost = tuple(int(p) for p in patch), math.inf
    for combo in itertools.product(*options):
        sides = tuple(side for side, _ in combo)
        cost = math.prod(sides) * math.prod(count for _, count in combo)
        if cost > best_cost or (cost == best_cost and math.prod(sides) >= math.prod(best)):
            continue
        if fits(sides):  # type: ignore[arg-type]
            best, best_cost = sides, cost
    return best  # type: ignore[return-value]


def _axis_options(size: int, patch: int, overlap: float) -> list[tuple[int, int]]:
    """(window side, number of windows) pairs worth trying along one axis."""
    options: dict[int, int] = {}
    largest = max(round_up(size), int(patch))
    for count in range(1, 64):
        side = max(int(patch), round_up(math.ceil(size / (1 + (count - 1) * (1 - overlap)))))
        side = min(side, largest)
        options.setdefault(side, len(window_starts(size, side, overlap)))
        if side == patch:
            break
    return sorted(options.items())


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows go on a (padded) volume."""

    shape: Shape3  # padded volume shape
    window: Shape3
    starts: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

    @classmethod
    def make(cls, shape: Sequence[int], window: Sequence[int], overlap: float) -> WindowPlan:
        padded = tuple(max(int(n), int(w)) for n, w in zip(shape, window))
        starts = tuple(tuple(window_starts(n, w, overlap)) for n, w in zip(padded, window))
        return cls(padded, tuple(int(w) for w in window), starts)  # type: ignore[arg-type]

    @property
    def count(self) -> int:
        return math.prod(len(s) for s in self.starts)


Predictor = Callable[[torch.Tensor], torch.Tensor]


def sliding_window_predict(volume: np.ndarray, predictor: Predictor, out_channels: int,
                           window: Sequence[int], overlap: float = 0.25, batch_size: int = 1,
                           device: torch.device | str = "cpu",
                           progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Blended probabilities ``(K, X, Y, Z)`` float16 for a ``(C, X, Y, Z)`` volume.

    ``predictor`` maps a ``(B, C, wx, wy, wz)`` float32 batch on ``device`` to ``(B, K, wx,
    wy, wz)`` probabilities (activation, flips and autocast are the caller's business). A
    volume smaller than the window is padded by repeating its edge voxels, the most
    neutral context for a network trained on crops from inside scans.
    """
    if volume.ndim != 4:
        raise ValueError(f"volume must be (C, X, Y, Z), got shape {volume.shape}")
    if overlap < 0 or overlap >= 1:
        raise ValueError(f"overlap must be in [0, 1), not {overlap}")
    device = torch.device(device)
    size = volume.shape[1:]
    plan = WindowPlan.make(size, window, overlap)
    padding = [(0, 0)] + [(0, p - n) for n, p in zip(size, plan.shape)]
    padded = np.pad(volume, padding, mode="edge") if any(b for _, b in padding) else volume
    weights = torch.from_numpy(gaussian_weights(plan.window)).to(device)
    result = np.empty((out_channels, *plan.shape), dtype=np.float16)
    slab = _Slab(result, weights, plan.window[2], device)
    done = 0
    for z, corners in _z_groups(plan):
        slab.advance(z)
        for chunk in _batches(corners, batch_size):
            batch = np.stack([padded[:, x:x + plan.window[0], y:y + plan.window[1],
                                     z:z + plan.window[2]] for x, y in chunk])
            probabilities = predictor(torch.from_numpy(batch).to(device))
            for (x, y), window_probs in zip(chunk, probabilities):
                slab.add(window_probs, x, y)
            done += len(chunk)
            if progress is not None:
                progress(done, plan.count)
    slab.finish()
    return result[:, :size[0], :size[1], :size[2]]


def _z_groups(plan: WindowPlan) -> Iterator[tuple[int, list[tuple[int, int]]]]:
    corners = [(x, y) for x in plan.starts[0] for y in plan.starts[1]]
    for z in plan.starts[2]:
        yield z, corners


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + size]


class _Slab:
    """float32 accumulators over the z range still open; finalised voxels go to ``result``."""

    def __init__(self, result: np.ndarray, weights: torch.Tensor, depth: int,
                 device: torch.device):
        self.result, self.weights, self.depth, self.device = result, weights, depth, device
        self.low = 0  # first z index held
        self.sum = torch.zeros((result.shape[0], *result.shape[1:3], 0), device=device)
        self.norm = torch.zeros((*result.shape[1:3], 0), device=device)
        self.z = 0

    def advance(self, z: int) -> None:
        """Finalise everything below ``z`` (no later window starts lower), open ``z + depth``."""
        self._flush(z)
        self.z = z
        missing = z + self.depth - (self.low + self.sum.shape[-1])
        if missing > 0:
            self.sum = torch.cat([self.sum, self.sum.new_zeros((*self.sum.shape[:-1], missing))],
                                 dim=-1)
            self.norm = torch.cat([self.norm, self.norm.new_zeros((*self.norm.shape[:-1],
                                                                   missing))], dim=-1)

    def add(self, probabilities: torch.Tensor, x: int, y: int) -> None:
        wx, wy, wz = self.weights.shape
        z = self.z - self.low
        self.sum[:, x:x + wx, y:y + wy, z:z + wz].addcmul_(probabilities.float(), self.weights)
        self.norm[x:x + wx, y:y + wy, z:z + wz] += self.weights

    def finish(self) -> None:
        self._flush(self.low + self.sum.shape[-1])

    def _flush(self, until: int) -> None:
        count = until - self.low
        if count <= 0:
            return
        blended = self.sum[..., :count] / self.norm[..., :count]
        self.result[..., self.low:until] = blended.to(torch.float16).cpu().numpy()
        self.sum, self.norm = self.sum[..., count:], self.norm[..., count:]
        self.low = until
