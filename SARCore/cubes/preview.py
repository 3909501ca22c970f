"""A PNG to eyeball a cube store: a few cubes per scale beside their corrupted versions.

Each pair shows the middle z-slice of the restoration target (the cube, flipped if the
corruption flipped it) and of the corrupted input the network sees, labelled with scale
class, modality and case. Drawn with matplotlib's Agg canvas (no display, no pyplot
global state).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from SARCore.atomic import atomic_path
from SARCore.cubes.config import SCALE_NAMES
from SARCore.cubes.store import CubeDataset
from SARCore.errors import ConfigError
from SARCore.io.modality import MODALITY_NAMES

Corruption = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def pick_cubes(dataset: CubeDataset, per_scale: int, seed: int) -> dict[int, list[int]]:
    """Up to ``per_scale`` random dataset positions for each scale class present."""
    rng = np.random.default_rng(seed)
    picks = {}
    for scale in sorted(int(s) for s in np.unique(dataset.scales)):
        positions = np.flatnonzero(dataset.scales == scale)
        chosen = rng.choice(positions, size=min(per_scale, len(positions)), replace=False)
        picks[scale] = sorted(int(p) for p in chosen)
    return picks


def render_preview(cubes_root: str | Path, out_png: str | Path, per_scale: int = 3,
                   seed: int = 0, corruption: Corruption | None = None) -> Path:
    """Write the preview PNG of the store at ``cubes_root``; returns its path."""
    if per_scale < 1:
        raise ConfigError(f"per_scale must be a positive integer, not {per_scale!r}")
    dataset = CubeDataset(cubes_root)
    picks = pick_cubes(dataset, per_scale, seed)
    if corruption is None:
        from SARCore.corruptions import ModelsGenesisCorruption  # lazy: optional at import

        corruption = ModelsGenesisCorruption()
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for scale, positions in picks.items():
        items = [dataset[p] for p in positions]
        batch = torch.stack([item["cube"] for item in items])
        if hasattr(corruption, "corrupt"):  # the Models Genesis pipeline says what it did
            result = corruption.corrupt(batch, generator=generator)
            corrupted, target = result.corrupted, result.target
            names = transform_names(result.record)
        else:
            corrupted, target = corruption(batch, generator=generator)
            names = ["corrupted"] * len(items)
        rows.append((scale, items, target, corrupted, names))
    return _draw(rows, dataset.case_names, per_scale, Path(out_png))


def transform_names(record) -> list[str]:
    """Per sample, the transforms a :class:`CorruptionRecord` says it got, in words."""
    names = []
    for i in range(len(record.flip_count)):
        done = []
        flips = int(record.flip_count[i])
        if flips:
            done.append(f"flip x{flips}")
        if bool(record.shuffled[i]):
            done.append("local shuffle")
        if bool(record.nonlinear[i]):
            done.append("inverted nonlinear" if bool(record.inverted[i]) else "nonlinear")
        if bool(record.inner_painted[i]):
            done.append("in-painting")
        if bool(record.outer_painted[i]):
            done.append("out-painting")
        names.append(", ".join(done) if done else "no transform (identity)")
    return names


def _draw(rows: list, case_names: list[str], per_scale: int, out: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2.2 * 2 * per_scale, 2.5 * len(rows)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(rows), 2 * per_scale, squeeze=False)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88, wspace=0.05,
                           hspace=0.35)
    for ax in axes.flat:
        ax.set_axis_off()
    for r, (scale, items, target, corrupted, names) in enumerate(rows):
        for c, item in enumerate(items):
            modality = MODALITY_NAMES[int(item["modality"])]
            label = f"{SCALE_NAMES[scale]} (scale {scale}), {modality}\n{case_names[item['case']]}"
            for k, (volume, title) in enumerate(((target[c], label), (corrupted[c], names[c]))):
                ax = axes[r, 2 * c + k]
                _show_slice(ax, volume)
                # Text, not set_title: title placement measures every axis (seconds).
                ax.text(0.5, 1.02, title, transform=ax.transAxes, ha="center", va="bottom",
                        fontsize=7)
    figure.suptitle("cubes (middle z-slice) and their corrupted versions", fontsize=10)
    with atomic_path(out) as tmp:
        figure.savefig(tmp, format="png")
    return out


def _show_slice(ax, volume: torch.Tensor) -> None:
    """``volume`` ``[1, x, y, z]``: its middle z-slice with x across and y down."""
    array = volume[0].detach().float().cpu().numpy()
    ax.imshow(array[:, :, array.shape[2] // 2].T, cmap="gray", vmin=0.0, vmax=1.0,
              interpolation="nearest")
