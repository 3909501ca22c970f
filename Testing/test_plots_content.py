"""What the PNGs show a person: panel titles, whole-epoch ticks, legends, readable scales.

The figures are built by functions that return the matplotlib Figure, so these tests read
back the axes a person will look at, then check that the written PNG decodes to a picture
that is not blank.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from SARCore.evaluation.plots import (
    data_efficiency_figure,
    loss_curves_figure,
    plot_data_efficiency,
)
from SARCore.training.metrics_log import loss_figure, plot_loss_curves, write_metrics_csv


def _finetune_history(epochs: int = 7) -> list[dict[str, float]]:
    rows = []
    for epoch in range(1, epochs + 1):
        dice_loss = 0.9 / epoch
        rows.append({"epoch": epoch, "step": 12 * epoch, "lr": 1e-3, "seconds": 3.0,
                     "train_loss": dice_loss, "train_dice_loss": dice_loss,
                     "train_dice": 1 - dice_loss, "val_loss": dice_loss + 0.05,
                     "val_dice_loss": dice_loss + 0.05, "val_dice": 0.95 - dice_loss})
    return rows


def _pretrain_history(epochs: int = 5) -> list[dict[str, float]]:
    return [{"epoch": e, "train_loss": 1.0 / e, "train_restoration": 0.5 / e,
             "train_scale": 0.4 / e, "train_adversarial": 0.69, "val_loss": 1.1 / e,
             "val_restoration": 0.55 / e, "val_scale": 0.45 / e, "val_adversarial": 0.7}
            for e in range(1, epochs + 1)]


def _visible(fig) -> list:
    return [ax for ax in fig.axes if ax.axison]


def _integer_ticks(ax) -> bool:
    ticks = ax.get_xticks()
    return len(ticks) > 0 and bool(np.all(ticks == np.round(ticks)))


def _decoded(png: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(str(png))


def test_a_runs_curves_explain_the_total_and_show_dice_on_its_whole_scale() -> None:
    import matplotlib.pyplot as plt

    fig = loss_figure(_finetune_history(), "finetune trial_0")
    try:
        panels = {ax.get_title(): ax for ax in _visible(fig)}
        assert len(panels) == 3  # loss, dice_loss, dice
        total = next(ax for title, ax in panels.items() if title.startswith("loss"))
        assert "weighted sum" in total.get_title()
        dice = next(ax for title, ax in panels.items() if title.startswith("Dice ("))
        dice_loss = next(ax for title, ax in panels.items() if title.startswith("Dice loss"))
        assert dice.get_ylim() == (0.0, 1.0) and dice_loss.get_ylim() == (0.0, 1.0)
        for ax in panels.values():
            assert ax.get_xlabel() == "epoch" and _integer_ticks(ax)
            labels = [t.get_text() for t in ax.get_legend().get_texts()]
            assert labels == ["train", "val"]
            assert ax.lines[0].get_xdata().tolist() == list(range(1, 8))
        assert fig._suptitle is not None and fig._suptitle.get_text() == "finetune trial_0"
    finally:
        plt.close(fig)


def test_pretraining_curves_get_one_panel_per_term(tmp_path: Path) -> None:
    png = tmp_path / "loss_curves.png"
    plot_loss_curves(png, _pretrain_history(), "pretrain sar")
    image = _decoded(png)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 600
    assert float(image[..., :3].std()) > 0.05  # drawn, not a blank canvas
    import matplotlib.pyplot as plt

    fig = loss_figure(_pretrain_history())
    try:
        titles = [ax.get_title() for ax in _visible(fig)]
        assert len(titles) == 4
        assert titles[1:] == ["restoration", "scale", "adversarial"]
        assert all(_integer_ticks(ax) for ax in _visible(fig))
    finally:
        plt.close(fig)
    assert not list(tmp_path.glob("*.tmp*"))  # the atomic writer left no partial file


def test_a_single_epoch_still_gets_whole_epoch_ticks() -> None:
    import matplotlib.pyplot as plt

    fig = loss_figure(_finetune_history(1))
    try:
        assert all(_integer_ticks(ax) for ax in _visible(fig))
    finally:
        plt.close(fig)


def test_method_curves_name_the_loss_and_start_at_zero(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    runs = []
    for trial in range(2):
        path = tmp_path / f"metrics_{trial}.csv"
        write_metrics_csv(path, _finetune_history(5 + trial))
        runs.append(path)
    fig = loss_curves_figure({"SAR": runs, "Scratch": runs[:1]}, "Fine-tuning loss")
    try:
        (ax,) = fig.axes
        assert ax.get_ylim()[0] == 0.0 and "Dice loss" in ax.get_ylabel()
        assert _integer_ticks(ax)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["SAR (train)", "SAR (val)", "Scratch (train)", "Scratch (val)"]
        assert len(ax.collections) == 1  # the std band: only SAR has two trials
    finally:
        plt.close(fig)


def test_data_efficiency_reads_in_percent_on_the_whole_scale(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    results = {"SAR": {0.1: [0.62, 0.64], 1.0: [0.81, 0.79]},
               "Scratch": {0.1: [0.55, 0.57], 1.0: [0.80, 0.78]}}
    fig = data_efficiency_figure(results)
    try:
        (ax,) = fig.axes
        assert ax.get_xscale() == "log" and ax.get_ylim() == (0.0, 100.0)
        assert ax.get_ylabel() == "Dice (%)"
        sar_line = ax.lines[0]
        np.testing.assert_allclose(np.asarray(sar_line.get_ydata(), dtype=float), [63.0, 80.0])
    finally:
        plt.close(fig)
    png = plot_data_efficiency(results, tmp_path / "eff.png")
    assert float(_decoded(png)[..., :3].std()) > 0.05
