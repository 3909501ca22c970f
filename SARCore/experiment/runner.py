"""``run_experiment``: one config file -> every stage of the paper's protocol -> report.

Stages, each skipped when its done-marker (``<out>/stages/*.json``) matches::

    preprocess-*      unlabeled scans -> <out>/pretraining/preprocessed/<n>_<source>/
    cubes             multi-scale cubes -> <out>/pretraining/cubes/
    pretrain-<m>      one model per method -> <out>/pretraining/<m>/model.sarmodel
    finetune-<i>-<f>  per init and label fraction, every trial/fold ->
                      <out>/finetuning/<init>/<fraction>/<trial_k>/
    segment-<i>-<f>   the test cases of every trial/fold -> .../<trial_k>/predictions/
    evaluate          per-case metrics, tables, t-tests -> <out>/evaluation/
    report            <out>/report.md + figures (rewritten on every run)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from SARCore.experiment.config import ExperimentConfig, resolve
from SARCore.experiment.evaluation import run_evaluation, run_segmentation
from SARCore.experiment.finetuning import check_disjoint, run_finetuning
from SARCore.experiment.pretraining import run_pretraining
from SARCore.experiment.report import write_report
from SARCore.experiment.stages import StageBook
from SARCore.io.discovery import discover_cases
from SARCore.progress import NullReporter, Reporter

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data"


@dataclass
class ExperimentResult:
    out_dir: Path
    report: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _unlabeled_files(config: ExperimentConfig, data_root: Path) -> list[str]:
    files = []
    for source in config.pretraining.data:
        cases = discover_cases([resolve(data_root, source.path)], sequence=source.sequence,
                               modality=source.modality or None,
                               allow_outside=source.allow_outside_paths)
        files += [str(p) for c in cases for p in c.images]
    return files


def run_experiment(config: ExperimentConfig, out_dir: str | Path,
                   data_root: str | Path | None = None,
                   reporter: Reporter | None = None) -> ExperimentResult:
    """Run (or finish) every stage of ``config`` into ``out_dir``; returns the report path."""
    reporter = reporter or NullReporter()
    root = Path(data_root) if data_root else DEFAULT_DATA_ROOT
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.pretraining.methods:
        check_disjoint(config, root, _unlabeled_files(config, root))
    book = StageBook(out, reporter)
    pretrained = run_pretraining(config, root, out, book, reporter)
    runs = run_finetuning(config, root, out, pretrained, book, reporter)
    predictions = run_segmentation(config, runs, book, reporter)
    evaluation = run_evaluation(config, runs, predictions, out, book, reporter)
    report = write_report(config, out, pretrained, runs, evaluation, book)
    reporter.log(f"report: {report}")
    return ExperimentResult(out, report, book.ran, book.skipped)
