"""Scoring segmentations the way the paper reports them.

* :mod:`~SARCore.evaluation.metrics` - Dice (1.0 when both empty), HD95 in mm, volumes,
  tumor-size buckets,
* :mod:`~SARCore.evaluation.folders` - prediction/truth file matching, folder scoring,
* :mod:`~SARCore.evaluation.stats`   - mean +- std over trials, t-tests, Table-2 summaries,
* :mod:`~SARCore.evaluation.tables`  - Markdown/CSV tables laid out like Tables 2-4,
* :mod:`~SARCore.evaluation.plots`   - loss curves (Fig. 3), Dice vs label fraction,
* :mod:`~SARCore.evaluation.report`  - runs -> report files (what ``evaluate`` writes).
"""

from SARCore.evaluation.folders import evaluate_folder, evaluate_predictions
from SARCore.evaluation.metrics import (
                                        CaseScore,
                                        LabelGroup,
                                        assign_buckets,
                                        dice,
                                        hd95,
                                        size_bucket,
                                        tercile_thresholds,
                                        volume_ml,
)
from SARCore.evaluation.plots import plot_data_efficiency, plot_loss_curves
from SARCore.evaluation.report import evaluate_runs, write_report
from SARCore.evaluation.stats import Summary, TTest, mean_std, summarize, ttest, ttest_rows
from SARCore.evaluation.tables import (
                                        table2_csv,
                                        table2_markdown,
                                        table4_csv,
                                        table4_markdown,
                                        ttest_markdown,
)

__all__ = ["CaseScore", "LabelGroup", "Summary", "TTest", "assign_buckets", "dice",
           "evaluate_folder", "evaluate_predictions", "evaluate_runs", "hd95", "mean_std",
           "plot_data_efficiency", "plot_loss_curves", "size_bucket", "summarize",
           "table2_csv", "table2_markdown", "table4_csv", "table4_markdown",
           "tercile_thresholds", "ttest", "ttest_markdown", "ttest_rows", "volume_ml",
           "write_report"]
