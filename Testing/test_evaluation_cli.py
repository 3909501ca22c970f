"""``python -m SARCore evaluate`` on the real BraTS labels, in a real process.

Predictions are made from the manual labels themselves (exact, and eroded by one voxel),
so the expected Dice values follow from voxel counts.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SARCore.io.arrays import array_to_image, image_to_array

REPO = Path(__file__).resolve().parents[1]


def _evaluate(*args: str) -> tuple[int, list[dict], str]:
    result = subprocess.run([sys.executable, "-m", "SARCore", "evaluate", *args,
                             "--progress", "json"], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.returncode, events, result.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory, brats2015_cases) -> dict:
    """Exact and eroded whole-tumor predictions for the 4 cases, and the expected Dice."""
    root = tmp_path_factory.mktemp("eval")
    exact, eroded = root / "exact", root / "eroded"
    expected, volumes = {}, {}
    for case in brats2015_cases:
        truth = sitk.ReadImage(str(case / "OTMultiClass.nii.gz"))
        whole = image_to_array(truth) > 0
        shrunk = ndimage.binary_erosion(whole)
        for folder, mask in ((exact, whole), (eroded, shrunk)):
            folder.mkdir(exist_ok=True)
            sitk.WriteImage(array_to_image(mask.astype(np.uint8), truth),
                            str(folder / f"{case.name}_label.nii.gz"))
        expected[case.name] = 2 * shrunk.sum() / (shrunk.sum() + whole.sum())
        volumes[case.name] = whole.sum() / 1000.0  # 1 mm voxels
    return {"root": root, "exact": exact, "eroded": eroded, "dice": expected,
            "volumes": volumes}


def test_evaluate_two_methods_with_ttest(runs, brats2015_cases) -> None:
    out = runs["root"] / "report"
    code, events, stderr = _evaluate(
        "--pred", str(runs["exact"]), "--truth", str(brats2015_cases[0].parent),
        "--labels", "whole=1,2,3,4", "--compare", str(runs["eroded"]), "--out", str(out))
    assert code == 0, stderr
    done = events[-1]
    assert done["event"] == "done"
    assert done["dice"]["exact"]["whole_all"]["mean"] == pytest.approx(1.0)
    assert done["hd95_mm"]["exact"]["whole_all"]["mean"] == 0.0
    assert 1.0 <= done["hd95_mm"]["eroded"]["whole_all"]["mean"] < 5.0  # one voxel in
    eroded = done["dice"]["eroded"]["whole_all"]
    assert eroded["mean"] == pytest.approx(np.mean(list(runs["dice"].values())))
    assert eroded["std"] == pytest.approx(np.std(list(runs["dice"].values()), ddof=1))
    assert done["thresholds_ml"] == pytest.approx(
        np.percentile(list(runs["volumes"].values()), [100 / 3, 200 / 3]))
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert len(rows) == 8 and {r["size"] for r in rows} == {"S", "M", "L"}
    exact_rows = [r for r in rows if r["method"] == "exact"]
    assert all(float(r["hd95_mm"]) == 0.0 for r in exact_rows)
    table = (out / "table2.md").read_text()
    assert "| Method (Dice, %) | whole_S | whole_M | whole_L | whole_all |" in table
    assert "| exact | 100.00 ± 0.00 |" in table
    ttest = (out / "ttest.md").read_text()
    assert "eroded vs exact" in ttest and "Student's" in ttest
    assert (out / "table2_hd95.md").is_file()


def test_trial_subfolders_give_spread_over_trials(runs, brats2015_cases, tmp_path) -> None:
    trials = tmp_path / "trials"
    trials.mkdir()
    for name, source in (("trial_1", runs["exact"]), ("trial_2", runs["eroded"])):
        (trials / name).symlink_to(source, target_is_directory=True)
    code, events, stderr = _evaluate(
        "--pred", str(trials), "--truth", str(brats2015_cases[0].parent), "--labels",
        "whole=1,2,3,4", "--size-thresholds", "50", "150")
    assert code == 0, stderr
    cell = events[-1]["dice"]["trials"]["whole_all"]
    trial_means = [1.0, np.mean(list(runs["dice"].values()))]
    assert cell["mean"] == pytest.approx(np.mean(trial_means)) and cell["n"] == 2
    assert events[-1]["thresholds_ml"] == [50.0, 150.0]
    assert "over trials" in (trials / "evaluation" / "table2.md").read_text()


def test_missing_truth_is_a_clear_error(runs, tmp_path) -> None:
    code, events, _ = _evaluate("--pred", str(runs["exact"]), "--truth", str(tmp_path / "no"))
    assert code == 1
    assert "ground truth not found" in events[-1]["message"]


def test_one_truth_file_class_names_stdout_tables_and_na_buckets(runs, brats2015_cases,
                                                                 tmp_path) -> None:
    case = brats2015_cases[0]
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / f"{case.name}_label.nii.gz").symlink_to(runs["exact"] / f"{case.name}_label.nii.gz")
    result = subprocess.run(
        [sys.executable, "-m", "SARCore", "evaluate", "--pred", str(pred), "--truth",
         str(case / "OTMultiClass.nii.gz"), "--labels", "tumor:>0", "--out",
         str(tmp_path / "eval")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    # Tables on stdout, named by class, with no size buckets for one case.
    assert "| Method (Dice, %) | tumor |" in result.stdout
    assert "| pred | 100.00 ± 0.00 |" in result.stdout
    assert "tumor_S" not in result.stdout and "n/a" in result.stdout
    assert "Method (Dice" not in result.stderr  # logs and tables do not mix
    assert result.stderr.strip().splitlines()[-1].startswith("sar evaluate: wrote ")


def _columns(stdout: str) -> list[str]:
    header = next(line for line in stdout.splitlines() if line.startswith("| Method (Dice"))
    return [cell.strip() for cell in header.strip("|").split("|")[1:]]


def test_class_names_without_labels_and_their_source(runs, brats2015_cases, tmp_path) -> None:
    """Without --labels the columns are named by --model's header, else the predictions'
    records, else their .seg.nrrd segments (values only when none exists), and the run
    says which source it used."""
    from inference_models import header_for

    from SARCore.inference.model import SegmentClass
    from SARCore.inference.seg_nrrd import write_seg_nrrd
    from SARCore.models import UNet3D, save_model_file

    cases = brats2015_cases[:2]
    pred = tmp_path / "pred"
    pred.mkdir()
    for case in cases:
        (pred / f"{case.name}_label.nii.gz").symlink_to(
            runs["exact"] / f"{case.name}_label.nii.gz")
    truth = str(cases[0].parent)

    def evaluate(*extra: str) -> tuple[dict, list[str]]:
        code, events, stderr = _evaluate("--pred", str(pred), "--truth", truth, *extra)
        assert code == 0, stderr
        done = events[-1]
        return done, sorted({key.rsplit("_", 1)[0] for key in done["dice"]["pred"]})

    done, names = evaluate()  # nothing names the classes: BRATS values 1-4 + whole
    assert names == ["1", "2", "3", "4", "whole"]
    assert "label values found in the truth" in done["classes_from"]

    tumor = {"name": "tumor", "label": 1, "source_labels": ">0"}
    for case in cases:
        (pred / f"{case.name}.sar.json").write_text(json.dumps({"classes": [tumor]}))
    done, names = evaluate()
    assert names == ["tumor"] and "provenance record" in done["classes_from"]
    assert done["dice"]["pred"]["tumor_all"]["mean"] == pytest.approx(1.0)  # rule >0 used

    (pred / f"{cases[1].name}.sar.json").write_text(json.dumps(
        {"classes": [{**tumor, "name": "edema"}]}))
    code, events, _ = _evaluate("--pred", str(pred), "--truth", truth)
    assert code == 1 and "different models" in events[-1]["message"]
    assert events[-1]["file"].endswith(f"{cases[1].name}.sar.json")

    for case in cases:
        (pred / f"{case.name}.sar.json").unlink()
        labels = sitk.ReadImage(str(pred / f"{case.name}_label.nii.gz"))
        write_seg_nrrd(pred / f"{case.name}.seg.nrrd", labels,
                       [SegmentClass("whole_tumor", 1, (1.0, 0.0, 0.0))])
    done, names = evaluate()
    assert names == ["whole_tumor"] and "segment names of" in done["classes_from"]
    assert done["classes_from"].endswith(".seg.nrrd")

    header = header_for(classes=[{"name": "lesion", "label": 1, "color": [1, 0, 0],
                                  "source_labels": "1|3|4"}])
    model = save_model_file(tmp_path / "m.sarmodel", UNet3D(1, 1, 8).state_dict(), header)
    done, names = evaluate("--model", str(model))
    assert names == ["lesion"] and "model header" in done["classes_from"]
    # truth mapped by the header's rule: the whole-tumor prediction exceeds values 1|3|4
    assert done["dice"]["pred"]["lesion_all"]["mean"] < 1.0
