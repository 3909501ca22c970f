"""Match prediction files to ground-truth labels and score whole folders.

Predictions: the label maps in ``pred_dir`` (``<case>_label.nii.gz`` as ``segment``
writes them; ``.seg.nrrd`` files are skipped as duplicates). A ``pred_dir`` holding no
label maps but sub-folders that do is a set of runs (trials or folds), one per sub-folder.

Ground truth: whatever :func:`~SARCore.io.discovery.discover_cases` finds with a label
(BraTS case folders, MSD ``dataset.json``, ``<case>.nii.gz`` + ``<case>_label.nii.gz``
pairs); a folder of label files alone is matched by file name. Case ids are file names
without the image suffix and a trailing ``_label``/``_seg``/``_pred``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from SARCore.errors import DataError
from SARCore.evaluation.metrics import CaseScore, LabelGroup, as_groups, default_groups, score_case
from SARCore.io.arrays import image_to_array
from SARCore.io.discovery import IMAGE_SUFFIXES, discover_cases, is_image_file
from SARCore.io.geometry import Geometry, grid_mismatch
from SARCore.io.readers import read_label

log = logging.getLogger(__name__)

_TRAILING = re.compile(r"[_-](label|labels|seg|segmentation|pred|prediction|mask|gt|truth)$",
                       re.IGNORECASE)


def case_key(path: Path) -> str:
    """``brain1_label.nii.gz`` -> ``brain1``."""
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return _TRAILING.sub("", name)


def prediction_files(folder: str | Path) -> dict[str, Path]:
    """``{case: label map}`` directly inside ``folder`` (``.seg.nrrd`` skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("prediction folder not found", folder)
    files = sorted(p for p in folder.iterdir()
                   if is_image_file(p) and not p.name.lower().endswith(".seg.nrrd"))
    return {case_key(p): p for p in files}


def prediction_runs(folder: str | Path) -> dict[str, dict[str, Path]]:
    """``{run: {case: file}}``: the folder itself, or each sub-folder holding label maps."""
    folder = Path(folder)
    direct = prediction_files(folder)
    if direct:
        return {folder.name: direct}
    runs = {sub.name: prediction_files(sub) for sub in sorted(folder.iterdir()) if sub.is_dir()}
    runs = {name: files for name, files in runs.items() if files}
    if not runs:
        raise DataError("no label maps found (nor sub-folders of them)", folder,
                        "expected <case>_label.nii.gz files as 'segment' writes them")
    return runs


def truth_files(folder: str | Path, allow_outside: bool = False) -> dict[str, Path]:
    """``{case: truth label}`` from a dataset folder, a folder of label files, or one label
    file (matched to the prediction of the case whose folder holds it, or by file name);
    ``allow_outside``: a ``dataset.json`` may name files outside its folder."""
    folder = Path(folder)
    if folder.is_file():
        return {case_key(folder): folder, folder.parent.name: folder}
    if not folder.is_dir():
        raise DataError("ground truth not found (give a label file or a folder)", folder)
    try:
        found = {c.case_id: c.label for c in discover_cases([folder], allow_outside=allow_outside)
                 if c.label is not None}
    except DataError:
        if (folder / "dataset.json").is_file():
            raise  # a dataset description that is wrong is named, not skipped
        found = {}
    if found:
        return found
    files = {case_key(p): p for p in sorted(folder.iterdir()) if is_image_file(p)}
    if not files:
        raise DataError("no ground-truth labels found", folder)
    return files


def evaluate_folder(pred_dir: str | Path, truth_dir: str | Path,
                    labels: Sequence[LabelGroup | int | str] | None = None) -> list[CaseScore]:
    """Scores of every prediction in ``pred_dir`` that has a truth in ``truth_dir``."""
    return evaluate_predictions(prediction_files(pred_dir), truth_files(truth_dir), labels)


def evaluate_predictions(predictions: dict[str, Path], truth: dict[str, Path],
                         labels: Sequence[LabelGroup | int | str] | None = None
                         ) -> list[CaseScore]:
    """Scores of ``{case: prediction file}`` against ``{case: truth file}`` (same keys)."""
    matched = sorted(set(predictions) & set(truth))
    if not matched:
        where = next(iter(predictions.values())).parent if predictions else None
        raise DataError("no prediction matches a ground-truth case", where,
                        f"predictions: {', '.join(sorted(predictions)[:5])}; truth: "
                        f"{', '.join(sorted(truth)[:5])}")
    for case in sorted(set(predictions) - set(truth)):
        log.warning("%s: no ground truth for this prediction; skipped", predictions[case])
    groups = as_groups(labels) if labels is not None else dataset_groups(
        [truth[case] for case in matched])
    scores: list[CaseScore] = []
    for case in matched:
        scores.extend(score_files(case, predictions[case], truth[case], groups))
    return scores


def dataset_groups(truth_paths: Sequence[Path]) -> list[LabelGroup]:
    """Default groups: each non-zero value found in any truth, plus ``whole`` if several."""
    return default_groups(*(image_to_array(read_label(p)) for p in truth_paths))


def score_files(case: str, pred_path: Path, truth_path: Path,
                groups: Sequence[LabelGroup]) -> list[CaseScore]:
    """Read a prediction and its truth, check they share a grid, score them."""
    pred_image, truth_image = read_label(pred_path), read_label(truth_path)
    mismatch = grid_mismatch(Geometry.of(truth_image), Geometry.of(pred_image))
    if mismatch:
        raise DataError(f"prediction is not on its ground truth's grid: {mismatch}", pred_path,
                        f"truth: {truth_path}")
    pred, truth = image_to_array(pred_image), image_to_array(truth_image)
    return score_case(case, pred, truth, truth_image.GetSpacing(), groups)
