"""One rule for paths read from a file: they stay inside that file's folder.

A ``dataset.json`` (people write it; ``--allow-outside-paths`` opts out, spelled alike in
every verb that reads one: preprocess, finetune, segment, evaluate), a preprocessing
``manifest.json`` (read by ``cubes``) and a cube store's ``cubes.json`` (read by
``pretrain``) go through :func:`SARCore.io.paths.inside_folder`. Real scans and real
processes of the CLI throughout.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import SimpleITK as sitk
from inference_models import calibrated_model, crop_to_file

from SARCore.cli import build_parser, main
from SARCore.cli.options import ALLOW_OUTSIDE_HELP
from SARCore.cubes.generator import collect_volumes
from SARCore.cubes.store import META_NAME, CubeDataset
from SARCore.errors import DataError
from SARCore.io.paths import inside_folder
from SARCore.preprocess.manifest import MANIFEST_NAME

DATASET_VERBS = ("preprocess", "finetune", "segment", "evaluate")
OUTSIDE = "outside the folder of dataset.json"


def _events(capsys: pytest.CaptureFixture) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()
            if line.startswith("{")]


def _error(events: list[dict]) -> str:
    return next(e["message"] for e in events if e["event"] == "error")


def _dataset(folder: Path, training: list[dict], modality: str = "FLAIR") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps({"modality": {"0": modality},
                                                     "training": training}))
    return folder


def test_every_dataset_verb_has_the_same_option() -> None:
    verbs = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001
    for verb in DATASET_VERBS:
        [action] = [a for a in verbs[verb]._actions  # noqa: SLF001
                    if "--allow-outside-paths" in a.option_strings]
        assert action.dest == "allow_outside_paths" and action.default is False, verb
        assert action.help == ALLOW_OUTSIDE_HELP, verb


@pytest.mark.parametrize("name, inside", [("imagesTr/a.nii.gz", True),
                                          ("imagesTr/../a.nii.gz", True),
                                          ("../a.nii.gz", False), ("a/../../b", False),
                                          ("/etc/passwd", False)])
def test_inside_folder_rule(tmp_path: Path, name: str, inside: bool) -> None:
    listed_in = tmp_path / "dataset.json"
    if inside:
        assert inside_folder(tmp_path, name, listed_in) == tmp_path / name
    else:
        with pytest.raises(DataError, match="points outside") as caught:
            inside_folder(tmp_path, name, listed_in)
        assert caught.value.path == str(listed_in)
    assert inside_folder(tmp_path, name, listed_in, allow_outside=True) == tmp_path / name


def test_finetune_refuses_outside_paths_unless_allowed(tmp_path: Path,
                                                       brats2015_cases: list[Path],
                                                       capsys: pytest.CaptureFixture) -> None:
    from SARCore.cli.finetune import _options
    from SARCore.config import from_mapping
    from SARCore.finetune.config import FinetuneConfig
    from SARCore.finetune.setup import plan_run

    folder = _dataset(tmp_path / "msd", [
        {"image": str(case / "Flair_subtrMeanDivStd.nii.gz"),
         "label": str(case / "OTMultiClass.nii.gz")} for case in brats2015_cases[:3]])
    out = tmp_path / "run"
    args = ["finetune", "--data", str(folder), "--out", str(out), "--preset", "brats",
            "--spacing", "4", "4", "4", "--device", "cpu", "--progress", "json"]
    assert main(args) == 1
    message = _error(_events(capsys))
    assert OUTSIDE in message and str(folder / "dataset.json") in message
    assert not out.exists()  # refused before any work: the folder it made is gone again

    parsed = build_parser().parse_args([*args, "--allow-outside-paths"])
    config = from_mapping(FinetuneConfig, _options(parsed))
    assert config.allow_outside_paths is True
    plan = plan_run(config)
    assert len(plan.cases) == 3
    assert {c.label for c in plan.cases.values()} == {
        case / "OTMultiClass.nii.gz" for case in brats2015_cases[:3]}
    with pytest.raises(DataError, match=OUTSIDE):  # the config field alone decides
        plan_run(replace(config, allow_outside_paths=False))


def test_segment_refuses_outside_paths_unless_allowed(tmp_path: Path, brats_flair: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "scans").mkdir()
    crop = crop_to_file(brats_flair, tmp_path / "scans" / "pat1_flair.nii.gz", (48, 80, 40),
                        (64, 64, 32))
    model = calibrated_model(tmp_path / "flair.sarmodel", [crop])
    folder = _dataset(tmp_path / "msd", [{"image": str(crop)}])
    out = tmp_path / "seg"
    args = ["segment", str(folder), "--model", str(model), "--out", str(out), "--device",
            "cpu", "--progress", "json"]
    assert main(args) == 1
    events = _events(capsys)
    assert OUTSIDE in _error(events)
    assert not list(out.glob("*_label.nii.gz"))
    assert main([*args, "--allow-outside-paths"]) == 0
    label = sitk.ReadImage(str(out / "pat1_flair_label.nii.gz"))
    assert label.GetSize() == sitk.ReadImage(str(crop)).GetSize()


def test_evaluate_refuses_outside_paths_unless_allowed(tmp_path: Path, data_dir: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    image = data_dir / "tcga_gbm_t1gd" / "brain1_image.nrrd"
    truth = data_dir / "tcga_gbm_t1gd" / "brain1_label.nrrd"
    folder = _dataset(tmp_path / "msd", [{"image": str(image), "label": str(truth)}], "MRI")
    pred = tmp_path / "pred"
    pred.mkdir()
    sitk.WriteImage(sitk.ReadImage(str(truth)), str(pred / "brain1_image_label.nii.gz"))
    args = ["evaluate", "--pred", str(pred), "--truth", str(folder), "--out",
            str(tmp_path / "eval"), "--progress", "json"]
    assert main(args) == 1  # before: the error was swallowed and the folder listed instead
    assert OUTSIDE in _error(_events(capsys))
    assert main([*args, "--allow-outside-paths"]) == 0
    done = next(e for e in _events(capsys) if e["event"] == "done")
    assert done["dice"]["pred"]["1_all"] == {"mean": 1.0, "std": 0.0, "n": 1}  # found, scored


def test_cubes_refuses_a_manifest_entry_outside_its_folder(
        tmp_path: Path, real_pretrain_preprocessed: list[Path]) -> None:
    source = real_pretrain_preprocessed[0]
    folder = Path(shutil.copytree(source, tmp_path / "pre"))
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    case = next(iter(manifest["cases"].values()))
    name = case["outputs"]["image"]
    case["outputs"]["image"] = str(source / name)  # the same bytes: the checksum still fits
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=f"outside the folder of {MANIFEST_NAME}") as caught:
        collect_volumes([folder])
    assert caught.value.path == str(folder / MANIFEST_NAME)
    case["outputs"]["image"] = name
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert collect_volumes([folder])


def test_pretrain_refuses_a_cube_shard_outside_its_store(
        tmp_path: Path, small_real_cubes_dir: Path, capsys: pytest.CaptureFixture) -> None:
    store = Path(shutil.copytree(small_real_cubes_dir, tmp_path / "cubes"))
    meta = json.loads((store / META_NAME).read_text())
    meta["shards"][0]["file"] = str(small_real_cubes_dir / meta["shards"][0]["file"])
    (store / META_NAME).write_text(json.dumps(meta))
    with pytest.raises(DataError, match=f"outside the folder of {META_NAME}"):
        CubeDataset(store)
    out = tmp_path / "run"
    assert main(["pretrain", str(store), "--out", str(out), "--width-divisor", "8",
                 "--max-steps", "1", "--device", "cpu", "--progress", "json"]) == 1
    assert f"outside the folder of {META_NAME}" in _error(_events(capsys))
    assert not (out / "model.sarmodel").exists()


def test_a_csv_keeps_its_files_inside_its_folder_unless_allowed(
        tmp_path: Path, brats2015_cases: list[Path]) -> None:
    """The fine-tuning CSV follows the dataset.json rule: relative paths inside its folder
    are read, absolute ones and ``..`` need ``allow_outside_paths``."""
    from SARCore.finetune.data import find_labeled_cases

    inside = tmp_path / "csv_inside"
    shutil.copytree(brats2015_cases[0], inside / "p1")
    (inside / "cases.csv").write_text("image,label\np1/Flair_subtrMeanDivStd.nii.gz,"
                                      "p1/OTMultiClass.nii.gz\n")
    [case] = find_labeled_cases(inside / "cases.csv")
    assert case.label == inside / "p1" / "OTMultiClass.nii.gz"

    listed = tmp_path / "csv_outside" / "cases.csv"
    listed.parent.mkdir()
    rows = [f"{c.name},{c / 'Flair_subtrMeanDivStd.nii.gz'},{c / 'OTMultiClass.nii.gz'}"
            for c in brats2015_cases[:2]]
    listed.write_text("id,image,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="outside the folder of cases.csv") as caught:
        find_labeled_cases(listed)
    assert caught.value.path == str(listed) and "--allow-outside-paths" in str(caught.value)
    dotted = tmp_path / "csv_inside" / "dotted.csv"
    dotted.write_text("image,label\n../csv_outside/x.nii.gz,p1/OTMultiClass.nii.gz\n")
    with pytest.raises(DataError, match="outside the folder of dotted.csv"):
        find_labeled_cases(dotted)
    allowed = find_labeled_cases(listed, allow_outside=True)
    assert [c.label for c in allowed] == [c / "OTMultiClass.nii.gz"
                                          for c in brats2015_cases[:2]]


def test_an_experiments_unlabeled_dataset_json_follows_the_same_rule(
        tmp_path: Path, brats2015_cases: list[Path]) -> None:
    """``pretraining.data`` entries: a dataset.json naming outside scans is refused before
    any stage runs, unless the entry says ``allow_outside_paths: true``."""
    import yaml

    from SARCore.errors import ConfigError
    from SARCore.experiment.config import load_experiment
    from SARCore.experiment.runner import _unlabeled_files

    _dataset(tmp_path / "data" / "unlabeled", [
        {"image": str(case / "T1c_subtrMeanDivStd.nii.gz")} for case in brats2015_cases[:2]])
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "experiments" / "mini.yaml")
                         .read_text())
    raw["pretraining"]["data"] = [{"path": "unlabeled", "preset": "mri"}]
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(DataError, match=OUTSIDE):
        _unlabeled_files(load_experiment(path), tmp_path / "data")
    raw["pretraining"]["data"][0]["allow_outside_paths"] = True
    path.write_text(yaml.safe_dump(raw))
    files = _unlabeled_files(load_experiment(path), tmp_path / "data")
    assert sorted(files) == sorted(str(c / "T1c_subtrMeanDivStd.nii.gz")
                                   for c in brats2015_cases[:2])
    raw["pretraining"]["data"][0]["allow_outside_paths"] = "yes"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="allow_outside_paths of unlabeled"):
        load_experiment(path)


def test_allowing_outside_paths_does_not_change_a_finished_stage() -> None:
    """The option only permits reading, so it is not part of the preprocessing stage's
    fingerprint: an experiment finished before the option existed (its markers record
    path, preset, modality and sequence) is still done after an upgrade, and turning the
    option on does not redo the stage."""
    from SARCore.experiment.config import UnlabeledSource
    from SARCore.experiment.pretraining import source_settings
    from SARCore.experiment.stages import fingerprint

    recorded_before = {"path": "ct/chest_ct", "preset": "ct", "modality": "", "sequence": "all"}
    plain = UnlabeledSource("ct/chest_ct")
    allowed = UnlabeledSource("ct/chest_ct", allow_outside_paths=True)
    assert source_settings(plain) == recorded_before
    assert fingerprint(source_settings(allowed)) == fingerprint(recorded_before)
    assert source_settings(UnlabeledSource("LUNA16", subsets=(0, 1)))["subsets"] == (0, 1)
