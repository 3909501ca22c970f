"""Per-sample NumPy reference of MG's corruptions: the speed baseline of bench_corruptions.

Straightforward loops over one ``(1, X, Y, Z)`` sample at a time, as in MG's
``generate_pair`` (same distributions as :mod:`SARCore.corruptions`, drawn from Python's
``random`` and NumPy's legacy global stream like MG; the Bezier table has MG's 100,000
points). Written for timing, not for training.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

import numpy as np
from scipy.special import comb


def bezier_curve(points: list[list[float]], n_times: int = 100000) -> tuple[np.ndarray, np.ndarray]:
    """x and y of the Bezier curve with ``points`` at ``n_times`` parameter values."""
    n = len(points) - 1
    t = np.linspace(0.0, 1.0, n_times)
    basis = np.array([comb(n, i) * t ** (n - i) * (1 - t) ** i for i in range(n + 1)])
    xs = np.array([p[0] for p in points]) @ basis
    ys = np.array([p[1] for p in points]) @ basis
    return xs, ys


def flip(x: np.ndarray, y: np.ndarray, prob: float = 0.4, max_flips: int = 3
         ) -> tuple[np.ndarray, np.ndarray]:
    for _ in range(max_flips):
        if random.random() >= prob:
            break
        axis = random.choice([1, 2, 3])  # spatial axes of (1, X, Y, Z)
        x, y = np.flip(x, axis=axis), np.flip(y, axis=axis)
    return x, y


def local_pixel_shuffling(x: np.ndarray, prob: float = 0.5, blocks: int = 10000) -> np.ndarray:
    if random.random() >= prob:
        return x
    out, orig = x.copy(), x.copy()
    _, rows, cols, deps = x.shape
    for _ in range(blocks):
        sx, sy, sz = (random.randint(1, rows // 10), random.randint(1, cols // 10),
                      random.randint(1, deps // 10))
        ox, oy, oz = (random.randint(0, rows - sx), random.randint(0, cols - sy),
                      random.randint(0, deps - sz))
        window = orig[0, ox:ox + sx, oy:oy + sy, oz:oz + sz].flatten()
        np.random.shuffle(window)
        out[0, ox:ox + sx, oy:oy + sy, oz:oz + sz] = window.reshape((sx, sy, sz))
    return out


def nonlinear_transformation(x: np.ndarray, prob: float = 0.9) -> np.ndarray:
    if random.random() >= prob:
        return x
    points = [[0, 0], [random.random(), random.random()], [random.random(), random.random()],
              [1, 1]]
    xs, ys = bezier_curve(points)
    if random.random() < 0.5:
        xs = np.sort(xs)  # decreasing map
    else:
        xs, ys = np.sort(xs), np.sort(ys)
    return np.interp(x, xs, ys)


def _random_box(dims: tuple[int, ...], sides: list[int]) -> tuple[slice, ...]:
    corner = [random.randint(3, d - s - 3) for d, s in zip(dims, sides)]
    return tuple(slice(c, c + s) for c, s in zip(corner, sides))


def inner_painting(x: np.ndarray, max_boxes: int = 5, more: float = 0.95) -> np.ndarray:
    dims = x.shape[1:]
    for _ in range(max_boxes):
        if random.random() >= more:
            break
        sides = [random.randint(d // 6, d // 3) for d in dims]
        x[(slice(None), *_random_box(dims, sides))] = np.random.rand(*sides)
    return x


def outer_painting(x: np.ndarray, max_boxes: int = 5, more: float = 0.95) -> np.ndarray:
    dims = x.shape[1:]
    original = x.copy()
    x = np.random.rand(*x.shape)
    for index in range(max_boxes):
        if index > 0 and random.random() >= more:
            break
        sides = [d - random.randint(3 * d // 7, 4 * d // 7) for d in dims]
        box = (slice(None), *_random_box(dims, sides))
        x[box] = original[box]
    return x


def painting(x: np.ndarray, prob: float = 0.9, outer_prob: float = 0.8) -> np.ndarray:
    if random.random() >= prob:
        return x
    return outer_painting(x) if random.random() < outer_prob else inner_painting(x)


def generate_pair(batch: np.ndarray, timings: dict[str, float] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """MG's per-sample loop over ``batch (B, 1, X, Y, Z)``; ``timings`` collects seconds."""
    timings = timings if timings is not None else defaultdict(float)
    y = batch.copy()
    x = batch.copy()
    steps = (("shuffle", local_pixel_shuffling), ("nonlinear", nonlinear_transformation),
             ("paint", painting))
    for n in range(batch.shape[0]):
        start = time.perf_counter()
        x[n], y[n] = flip(x[n], y[n])
        timings["flip"] += time.perf_counter() - start
        for name, step in steps:
            start = time.perf_counter()
            x[n] = step(x[n])
            timings[name] += time.perf_counter() - start
    return x, y
