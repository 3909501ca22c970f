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

import re
import shlex
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
