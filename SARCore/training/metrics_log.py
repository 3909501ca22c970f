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
_TERM_TITLES = {"loss": "loss (total: the weighted sum of the terms shown beside it)"}


def plot_loss_curves(path: str | Path, history: Sequence[dict[str, Any]], title: str = "") -> None:
    """One panel per term, train and validation against epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

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
        ax.set_title(_TERM_TITLES.get(term, term))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
