"""``sar preprocess --sequence`` takes one name, a comma list or ``all``, as finetune does.

A multi-sequence model (FLAIR + T1c) is pre-trained on cubes of each of its sequences, so
``preprocess`` must accept the same ``flair,t1c`` that ``finetune --sequence`` takes; it
writes one volume per sequence, named ``<case folder>_<sequence>`` as ``all`` does.
Checked on both shipped BraTS layouts: BraTS 2023 names (t2f, t1n) and BRATS 2015 names
(Flair_..., T1c_...).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from SARCore.errors import ConfigError
from SARCore.io.discovery import discover_cases

REPO = Path(__file__).resolve().parents[1]


def _ids_and_files(cases) -> dict[str, str]:
    return {c.case_id: c.images[0].name for c in cases if not c.problem}


def test_comma_list_on_brats_4seq(data_dir) -> None:
    cases = discover_cases([data_dir / "brats_4seq"], sequence="t2f,t1c")
    found = _ids_and_files(cases)
    assert found["TCGA-DU-7294_flair"] == "TCGA-DU-7294_fla_bet.nii.gz"
    assert found["TCGA-DU-7294_t1c"] == "TCGA-DU-7294_t1c_bet.nii.gz"
    assert found["BraTS-GLI-00001-000_flair"] == "BraTS-GLI-00001-000-t2f.nii.gz"
    assert found["BraTS-GLI-00001-000_t1c"] == "BraTS-GLI-00001-000-t1c.nii.gz"
    assert len(cases) == 6 and not any(c.problem for c in cases)
    # every case folder of the 4-sequence layout has 4 sequences: all gives 12
    assert len(discover_cases([data_dir / "brats_4seq"], sequence="all")) == 12


def test_comma_list_on_brats2015_and_a_missing_sequence(data_dir) -> None:
    cases = discover_cases([data_dir / "brats2015"], sequence="flair,t1c")
    found = _ids_and_files(cases)
    assert found["brats_2013_pat0001_1_flair"] == "Flair_subtrMeanDivStd.nii.gz"
    assert found["brats_2013_pat0001_1_t1c"] == "T1c_subtrMeanDivStd.nii.gz"
    assert len(found) == 8
    assert all(c.label is not None and c.label.name == "OTMultiClass.nii.gz" for c in cases)
    # BRATS 2015 ships FLAIR and T1c only: asking for T2 too is a per-case problem
    mixed = discover_cases([data_dir / "brats2015"], sequence="flair,t2")
    problems = [c for c in mixed if c.problem]
    assert len(problems) == 4 and all("no t2 sequence" in c.problem for c in problems)
    assert len([c for c in mixed if not c.problem]) == 4


@pytest.mark.parametrize("bad, words", [("flair,flare", "flare"), ("all,flair", "all"),
                                        ("flair,t2f", "twice")])
def test_bad_lists_are_refused(data_dir, bad, words) -> None:
    with pytest.raises(ConfigError, match=words):
        discover_cases([data_dir / "brats2015"], sequence=bad)


def test_cli_preprocess_two_sequences(data_dir, tmp_path) -> None:
    """The real CLI on one BRATS 2015 case: two volumes and a manifest naming both."""
    out = tmp_path / "pre"
    result = subprocess.run(
        [sys.executable, "-m", "SARCore", "preprocess",
         str(data_dir / "brats2015" / "brats_2013_pat0001_1"), "--sequence", "flair, T1c",
         "--preset", "mri", "--spacing", "3", "3", "3", "--out", str(out),
         "--progress", "json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout.splitlines()[-1])
    assert done["event"] == "done" and done["done"] == 2
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    text = json.dumps(manifest)
    for case_id, source in (("brats_2013_pat0001_1_flair", "Flair_subtrMeanDivStd"),
                            ("brats_2013_pat0001_1_t1c", "T1c_subtrMeanDivStd")):
        assert case_id in text and source in text
    assert len(list(out.rglob("*.nii.gz"))) >= 2
