"""``metrics.csv`` and ``loss_curves.png``, rewritten atomically from the run's history.

The history (a list of per-epoch dicts) lives in the checkpoint, so after a resume the
files show exactly the epochs the checkpoint knows, never rows from a lost epoch.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from SARCore.atomic import atomic_path, write_text_atomic


def write_metrics_csv(path: str | Path, history: Sequence[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in history:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text_atomic(path, buffer.getvalue())


def read_metrics_csv(path: str | Path) -> list[dict[str, float]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(handle)]


def loss_terms(history: Sequence[dict[str, Any]]) -> list[str]:
    """Term names that have a train_ or val_ column (``loss``, ``restoration``, ...)."""
    terms: list[str] = []
    for row in history:
        for key in row:
            for prefix in ("train_", "val_"):
                if key.startswith(prefix) and key[len(prefix):] not in terms:
                    terms.append(key[len(prefix):])
    return terms


#: Panel titles that need a word of explanation.
_TERM_TITLES = {"loss": "loss (total: the weighted sum of the terms shown beside it)",
                "dice": "Dice (hard overlap; 1 is perfect)",
                "dice_loss": "Dice loss (1 - soft Dice; 0 is perfect)"}

#: Terms bounded to [0, 1]: drawn on that whole scale so a flat 0.95 is not read as a climb.
_UNIT_RANGE_TERMS = frozenset({"dice", "dice_loss"})


def whole_epoch_axis(ax: Any, epochs: Sequence[float]) -> None:
    """Epoch ticks at whole numbers only, also for a run of one or two epochs (where
    matplotlib would otherwise fall back to ticks like 0.96, 0.98)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    if epochs:
        low, high = min(epochs), max(epochs)
        if high - low < 2:
            ax.set_xlim(low - 0.5, high + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def loss_figure(history: Sequence[dict[str, Any]], title: str = ""):
    """One panel per term, train and validation against epoch (a matplotlib Figure).

    Kept apart from the file writing so tests can read back what a person will see:
    panel titles, whole-epoch ticks, legends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    terms = loss_terms(history) or ["loss"]
    cols = min(3, len(terms))
    rows = -(-len(terms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    epochs = [row.get("epoch", i) for i, row in enumerate(history)]
    for ax, term in zip(axes.flat, terms):
        for prefix, style in (("train_", "-"), ("val_", "--")):
            points = [(e, row[prefix + term]) for e, row in zip(epochs, history)
                      if isinstance(row.get(prefix + term), (int, float))]
            if points:
                ax.plot(*zip(*points), style, marker=".", label=prefix.rstrip("_"))
        ax.set_title(_TERM_TITLES.get(term, term), fontsize=9)
        if term in _UNIT_RANGE_TERMS:
            ax.set_ylim(0.0, 1.0)
        whole_epoch_axis(ax, epochs)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_loss_curves(path: str | Path, history: Sequence[dict[str, Any]], title: str = "") -> None:
    """``loss_figure`` written atomically as a PNG."""
    import matplotlib.pyplot as plt

    fig = loss_figure(history, title)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90)
    finally:
        plt.close(fig)
