"""Paper-style tables (Markdown + CSV) and figures (PNG) from known numbers."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from SARCore.errors import DataError
from SARCore.evaluation.metrics import CaseScore
from SARCore.evaluation.plots import (
    mean_curve,
    plot_data_efficiency,
    plot_loss_curves,
    read_loss_csv,
)
from SARCore.evaluation.stats import summarize, ttest_rows
from SARCore.evaluation.tables import (
    fraction_name,
    table2_csv,
    table2_markdown,
    table4_csv,
    table4_markdown,
    ttest_markdown,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _summary():
    def scores(a: float, b: float) -> list[CaseScore]:
        return [CaseScore("small", "tumor", a, 3.0, 5.0, 5.0),
                CaseScore("large", "tumor", b, 5.0, 90.0, 80.0)]

    data = {"Scratch": {"1": scores(0.60, 0.80), "2": scores(0.70, 0.72)},
            "SAR": {"1": scores(0.80, 0.90), "2": scores(0.76, 0.86)}}
    return summarize(data, {"small": "S", "large": "L"}, "dice", "tumor", (20.0, 60.0))


def test_table2_markdown_layout() -> None:
    text = table2_markdown(_summary())
    lines = text.splitlines()
    assert lines[0] == "| Method (Dice, %) | tumor_S | tumor_M | tumor_L | tumor_all |"
    # Scratch S: trials 0.60, 0.70 -> 65.00 +- 7.07; L: 0.80, 0.72 -> 76.00 +- 5.66;
    # all: trial means 0.70, 0.71 -> 70.50 +- 0.71
    assert lines[2] == "| Scratch | 65.00 ± 7.07 | n/a ± n/a | 76.00 ± 5.66 | 70.50 ± 0.71 |"
    assert lines[3].startswith("| SAR | 78.00 ± 2.83 |")
    assert "S <= 20.00 mL < M <= 60.00 mL < L" in text
    assert "over trials" in text


def test_table2_csv_round_trips() -> None:
    rows = list(csv.DictReader(io.StringIO(table2_csv(_summary()))))
    assert len(rows) == 2 * 4
    first = rows[0]
    assert (first["method"], first["label"], first["bucket"]) == ("Scratch", "tumor", "S")
    assert float(first["dice_mean"]) == pytest.approx(0.65) and first["n"] == "2"


def test_ttest_table() -> None:
    summary = _summary()
    text = ttest_markdown(summary, ttest_rows(summary, "SAR", welch=True), "SAR")
    lines = text.splitlines()
    assert lines[0] == "| p-value | tumor_S | tumor_M | tumor_L | tumor_all |"
    assert lines[2].startswith("| Scratch vs SAR | 0.") and "| n/a |" in lines[2]
    assert "Welch's t-test" in text


def test_table4_layout_and_fraction_names() -> None:
    assert [fraction_name(f) for f in (0.5, 0.2, 0.1, 0.05, 0.02, 1.0)] == \
        ["1/2", "1/5", "1/10", "1/20", "1/50", "1"]
    results = {"BraTS": {"Scratch": {0.5: [0.68, 0.6837 * 2 - 0.68], 0.2: [0.5748]},
                         "SAR": {0.5: [0.7948], 0.2: [0.6918]}}}
    text = table4_markdown(results)
    lines = text.splitlines()
    assert lines[0] == "| Proportion | BraTS 1/2 | BraTS 1/5 |"
    assert lines[2] == "| Scratch | 68.37 | 57.48 |"
    assert lines[3] == "| SAR | 79.48 | 69.18 |"
    rows = list(csv.DictReader(io.StringIO(table4_csv(results))))
    assert rows[0]["proportion"] == "1/2" and float(rows[0]["dice_mean"]) == pytest.approx(0.6837)


def _write_metrics(path, losses):
    lines = ["epoch,train_loss,val_loss,lr"] + [f"{e},{t},{v},0.001" for e, (t, v)
                                                 in enumerate(losses, start=1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_loss_curves_average_trials_of_different_length(tmp_path) -> None:
    a = _write_metrics(tmp_path / "a.csv", [(0.9, 0.95), (0.6, 0.7), (0.4, 0.5)])
    b = _write_metrics(tmp_path / "b.csv", [(0.7, 0.75), (0.4, 0.5)])  # stopped early
    epochs, mean, std = mean_curve([read_loss_csv(a), read_loss_csv(b)], "train_loss")
    np.testing.assert_allclose(epochs, [1, 2, 3])
    np.testing.assert_allclose(mean, [0.8, 0.5, 0.4])
    np.testing.assert_allclose(std, [np.sqrt(0.02), np.sqrt(0.02), 0.0])
    png = plot_loss_curves({"Scratch": [a, b], "SAR": [a]}, tmp_path / "fig3.png")
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000


def test_loss_csv_errors_name_the_file(tmp_path) -> None:
    bad = tmp_path / "metrics.csv"
    bad.write_text("epoch,loss\n1,0.5\n")
    with pytest.raises(DataError, match="metrics.csv.*train_loss"):
        read_loss_csv(bad)


def test_data_efficiency_plot(tmp_path) -> None:
    png = plot_data_efficiency({"Scratch": {0.5: [0.68, 0.69], 0.02: [0.25, 0.26]},
                                "SAR": {0.5: [0.79], 0.02: [0.32]}}, tmp_path / "eff.png")
    assert png.read_bytes()[:8] == PNG_MAGIC
