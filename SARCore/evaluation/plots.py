"""Figures: fine-tuning loss curves per method (the paper's Fig. 3), Dice vs label fraction.

matplotlib with the Agg backend (no display needed); files are written atomically.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from SARCore.atomic import atomic_path
from SARCore.errors import DataError
from SARCore.evaluation.stats import mean_std
from SARCore.training.metrics_log import whole_epoch_axis

LOSS_COLUMNS = ("epoch", "train_loss", "val_loss")


def read_loss_csv(path: str | Path) -> dict[str, np.ndarray]:
    """``metrics.csv`` -> ``{"epoch", "train_loss", "val_loss"}`` arrays (NaN where blank)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DataError(f"cannot read metrics file ({exc.strerror})", path) from exc
    if not rows or any(c not in rows[0] for c in LOSS_COLUMNS):
        raise DataError(f"metrics file needs columns {', '.join(LOSS_COLUMNS)}", path)
    try:
        return {c: np.array([float(r[c]) if r[c] not in ("", None) else math.nan for r in rows])
                for c in LOSS_COLUMNS}
    except ValueError as exc:
        raise DataError(f"non-numeric value in metrics file ({exc})", path) from exc


def mean_curve(curves: Sequence[dict[str, np.ndarray]], column: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(epochs, mean, std)`` over trials; a trial that stopped early drops out after it."""
    epochs = np.unique(np.concatenate([c["epoch"] for c in curves]))
    means, stds = [], []
    for epoch in epochs:
        values = [float(c[column][c["epoch"] == epoch][0]) for c in curves
                  if np.any(c["epoch"] == epoch)]
        mean, std = mean_std(values)
        means.append(mean)
        stds.append(std)
    return epochs, np.array(means), np.array(stds)


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss_curves(curves_by_method: Mapping[str, Sequence[str | Path]], png: str | Path,
                     title: str = "Fine-tuning loss") -> Path:
    """Mean training (solid) and validation (dashed) loss per method, std band over trials."""
    return _save(loss_curves_figure(curves_by_method, title), png)


def loss_curves_figure(curves_by_method: Mapping[str, Sequence[str | Path]],
                       title: str = "Fine-tuning loss"):
    """The figure of :func:`plot_loss_curves`, unsaved (tests read its axes back)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for index, (method, paths) in enumerate(curves_by_method.items()):
        if not paths:
            continue
        curves = [read_loss_csv(p) for p in paths]
        color = f"C{index % 10}"
        for column, style in (("train_loss", "-"), ("val_loss", "--")):
            epochs, mean, std = mean_curve(curves, column)
            if np.all(np.isnan(mean)):
                continue
            label = f"{method} ({'train' if column == 'train_loss' else 'val'})"
            ax.plot(epochs, mean, style, color=color, label=label)
            if len(curves) > 1 and column == "train_loss":
                ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15)
    whole_epoch_axis(ax, [x for line in ax.lines for x in line.get_xdata()])
    ax.set_ylabel("Dice loss (1 - soft Dice; 0 is a perfect overlap)")
    ax.set_ylim(bottom=0.0)  # a loss on its true scale, not zoomed into a sliver
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_data_efficiency(results: Mapping[str, Mapping[float, Sequence[float]]],
                         png: str | Path, title: str = "Dice vs. labelled fraction") -> Path:
    """Mean Dice (%) +- std over trials against the fraction of labelled training cases."""
    return _save(data_efficiency_figure(results, title), png)


def data_efficiency_figure(results: Mapping[str, Mapping[float, Sequence[float]]],
                           title: str = "Dice vs. labelled fraction"):
    """The figure of :func:`plot_data_efficiency`, unsaved."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for method, by_fraction in results.items():
        fractions = sorted(by_fraction)
        stats = [mean_std(by_fraction[f]) for f in fractions]
        ax.errorbar(fractions, [m * 100 for m, _ in stats], yerr=[s * 100 for _, s in stats],
                    marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of labelled training data")
    ax.set_ylabel("Dice (%)")
    ax.set_title(title)
    ax.set_ylim(0.0, 100.0)  # Dice on its whole scale, so small gaps look small
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def _save(fig, png: str | Path) -> Path:
    plt = _figure()
    path = Path(png)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
