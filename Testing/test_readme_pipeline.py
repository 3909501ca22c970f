"""README's "The pipeline, step by step" block against the real CLI and the shipped data.

Every command of the block is read from README.md as a newcomer would copy it, parsed by
the real ``sar`` parser (options that do not exist, or are misspelled, fail here), and
its inputs are checked: shipped files and folders exist beside the project, every
``work/...`` path a step reads is written by an earlier step's ``--out``, the BraTS case
folder of step 5 holds the model's sequence, the truth of step 6 exists and names the
same case, and the experiment config loads. Running the whole block takes about 15
minutes on a 2-core CPU, which is the demo's job, not the test suite's.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from SARCore.cli import build_parser
from SARCore.errors import SARError

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[list[str]]:
    """The block's commands, continuation lines joined and comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## The pipeline, step by step", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    commands = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if line:
            commands.append(shlex.split(line))
    return commands


@pytest.fixture(scope="module")
def parsed():
    parser = build_parser()
    commands = readme_commands()
    assert all(c[0] == "sar" for c in commands)
    return [(c, parser.parse_args(c[1:])) for c in commands]


def test_block_has_every_step(parsed) -> None:
    verbs = [args.verb for _, args in parsed]
    assert verbs == ["preprocess", "preprocess", "cubes", "pretrain", "info", "finetune",
                     "segment", "evaluate", "experiment"]


def test_shipped_inputs_exist(parsed) -> None:
    for command, _ in parsed:
        for word in command:
            for piece in word.split("="):
                if piece.startswith("../shared/data"):
                    assert (REPO / piece).exists(), f"{piece} (in: {' '.join(command)})"


def test_each_step_reads_what_an_earlier_step_wrote(parsed) -> None:
    written: list[str] = []
    for command, args in parsed:
        outputs = {str(getattr(args, name, None) or "") for name in ("out", "preview")}
        read = [w for w in command if w.startswith("work/") and w not in outputs]
        for path in read:
            assert any(path == out or path.startswith(out.rstrip("/") + "/")
                       for out in written), f"{path} is read before any step writes it"
        if getattr(args, "out", None):
            written.append(str(args.out))


def test_segment_gets_the_trained_sequence_and_evaluate_its_truth(parsed) -> None:
    from SARCore.evaluation.folders import case_key, truth_files
    from SARCore.io.discovery import discover_cases

    finetune = next(a for _, a in parsed if a.verb == "finetune")
    segment = next(a for _, a in parsed if a.verb == "segment")
    evaluate = next(a for _, a in parsed if a.verb == "evaluate")
    assert finetune.fresh_head  # a short pre-training's head cannot find tumors
    cases = discover_cases([REPO / p for p in segment.inputs], sequence=finetune.sequence)
    assert cases and not any(c.problem for c in cases)
    assert all(c.modality == "MRI" for c in cases)
    truth = truth_files(REPO / evaluate.truth)
    predicted = {case_key(Path(f"{c.case_id}_label.nii.gz")) for c in cases}
    assert predicted & set(truth), "step 6's truth names no case step 5 segments"
    assert evaluate.labels == [finetune.labels]  # one label-rule syntax


def test_experiment_config_loads(parsed) -> None:
    from SARCore.experiment import load_experiment

    experiment = next(a for _, a in parsed if a.verb == "experiment")
    try:
        config = load_experiment(REPO / experiment.config)
    except SARError as exc:  # pragma: no cover - the message is the failure
        pytest.fail(str(exc))
    assert config.name
    assert (REPO / experiment.data_root).is_dir()


#: The only changes the end-to-end run makes to README's commands: options appended to a
#: verb's command line (argparse keeps the last value), each one documented in README's
#: "Trying the block in a few minutes" paragraph, which this table must match.
SHRINK = {
    "preprocess": ["--spacing", "2", "2", "2"],
    "cubes": ["--per-volume", "1", "1", "2"],
    "pretrain": ["--max-steps", "2"],
    "finetune": ["--max-steps", "2", "--epochs", "1"],
    "experiment": ["--set", "pretraining.methods=[sar]",
                   "--set", "pretraining.options.max_steps=2",
                   "--set", "finetuning.inits=[sar]", "--set", "finetuning.fraction_inits=[]",
                   "--set", "finetuning.label_fractions=[1.0]",
                   "--set", "finetuning.trials=1", "--set", "finetuning.max_steps=2"],
}


def test_readme_documents_the_shrink_options() -> None:
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    for verb, extra in SHRINK.items():
        assert " ".join(extra) in text, f"README does not document {verb} {' '.join(extra)}"


def _sar(project: Path, command: list[str]) -> subprocess.CompletedProcess:
    """One README command, as written plus its SHRINK options, from the project root."""
    sar = Path(sys.executable).with_name("sar")
    program = [str(sar)] if sar.exists() else [sys.executable, "-m", "SARCore"]
    return subprocess.run([*program, *command[1:], *SHRINK.get(command[1], [])],
                          cwd=project, capture_output=True, text=True, encoding="utf-8",
                          errors="replace", timeout=900)


def _wrote_line(result: subprocess.CompletedProcess, verb: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"sar {verb}:")]
    assert lines, f"no closing 'sar {verb}: wrote ...' line:\n{result.stderr[-2000:]}"
    return lines[-1]


@pytest.mark.slow  # about 7 min at load 7 on 2 cores, most of it pre-training and fine-tuning
def test_block_runs_end_to_end(tmp_path, data_dir) -> None:
    """Every command of the block, in order, in a project root with ../shared/data beside
    it; each step writes what README says and what the next step reads."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "experiments").symlink_to(REPO / "experiments")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(data_dir)
    seconds: dict[str, float] = {}
    for command in readme_commands():
        verb = command[1]
        start = time.monotonic()
        result = _sar(project, command)
        seconds[f"{verb} {len(seconds)}"] = round(time.monotonic() - start, 1)
        assert result.returncode == 0, (f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
        assert "\r" not in result.stderr  # plain progress lines off a terminal
        wrote = _wrote_line(result, verb)
        work = project / "work"
        if verb == "preprocess":
            manifest = json.loads((work / "pre" / "manifest.json").read_text(encoding="utf-8"))
            assert "work/pre" in wrote and manifest
        elif verb == "cubes":
            assert (work / "cubes" / "cubes.json").is_file()
            assert (work / "cubes" / "preview.png").stat().st_size > 0
        elif verb in ("pretrain", "finetune"):
            folder = work / ("sar" if verb == "pretrain" else "ft")
            assert (folder / "model.sarmodel").is_file(), wrote
        elif verb == "info":
            assert "sar" in result.stdout and "method" in result.stdout
        elif verb == "segment":
            for name in ("TCGA-DU-7294_label.nii.gz", "TCGA-DU-7294.seg.nrrd",
                         "TCGA-DU-7294.sar.json"):
                assert (work / "seg" / name).is_file(), name
        elif verb == "evaluate":
            assert (work / "eval" / "scores.csv").is_file()
            assert "| tumor" in result.stdout or "tumor_" in result.stdout, result.stdout
        elif verb == "experiment":
            assert (project / "runs" / "mini" / "report.md").is_file()
        if verb == "segment":  # an empty result is said, and why; a non-empty one is not
            import SimpleITK as sitk

            label = sitk.ReadImage(str(work / "seg" / "TCGA-DU-7294_label.nii.gz"))
            empty = not sitk.GetArrayViewFromImage(label).any()
            assert ("the segmentation is empty" in result.stderr) == empty, result.stderr
            # evaluate names its columns from this record's classes
            record = json.loads((work / "seg" / "TCGA-DU-7294.sar.json").read_text("utf-8"))
            assert record["classes"] == [{"name": "tumor", "label": 1, "source_labels": ">0"}]
    print("seconds per step:", seconds)


def test_gitignore_covers_the_folders_readme_writes(parsed) -> None:
    """``git status`` stays clean after following README: every output root is ignored."""
    roots = {Path(str(args.out)).parts[0] for _, args in parsed if getattr(args, "out", None)}
    roots.add("demo_output")  # ./sar.sh demo = experiments/mini.yaml's output
    assert {"work", "runs"} <= roots
    for root in sorted(roots):
        probe = f"{root}/some/file.nii.gz"
        result = subprocess.run(["git", "check-ignore", "-q", "--no-index", probe], cwd=REPO)
        assert result.returncode == 0, f"{root}/ is not in .gitignore"


def test_architecture_matches_the_code_and_readme() -> None:
    """ARCHITECTURE.md states array_to_image's real parameters and README's suite size."""
    import inspect

    from SARCore.io.arrays import array_to_image

    architecture = " ".join((REPO / "docs" / "ARCHITECTURE.md").read_text("utf-8").split())
    readme = " ".join((REPO / "README.md").read_text("utf-8").split())
    assert f"array_to_image({', '.join(inspect.signature(array_to_image).parameters)}" \
        in architecture.replace("=None", "")
    suite = re.compile(r"about (\d+) tests?\)?,? (?:takes )?(\d+) minutes on a quiet 2-core")
    assert suite.findall(architecture) and suite.findall(architecture) == suite.findall(readme)
