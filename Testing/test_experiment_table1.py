"""Table 1 and Tables 2-3 as experiment files (issue 9, protocol fixes 3 and 4): cube
counts per data entry, the LUNA16 subset selector, per-method overrides, named
single-scale and MG-crop variants, ``--set`` overrides and fine-tuning seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from SARCore.errors import ConfigError
from SARCore.experiment import load_experiment
from SARCore.experiment.config import UnlabeledSource, apply_overrides
from SARCore.experiment.finetuning import run_key

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_paper_brats_follows_table1() -> None:
    config = load_experiment(EXPERIMENTS / "paper_brats.yaml")
    by_path = {s.path.split("/")[0]: s for s in config.pretraining.data}
    assert by_path["LUNA16"].subsets == (0, 1, 2, 3, 4, 5, 6)
    # (large, medium, small) per volume x cases = the paper's (small, medium, large) columns
    for name, cases, table1 in (("LUNA16", 623, (19936, 9968, 9968)),
                                ("LiTS", 111, (7104, 3552, 3552)),
                                ("Task02_Heart", 30, (1920, 960, 960))):
        large, medium, small = by_path[name].per_volume
        assert (small * cases, medium * cases, large * cases) == table1
    assert by_path["BraTS2018"].per_volume == (16, 16, 32)  # 760 volumes: (24320, ...)
    assert config.pretraining.cubes["crop_rule"] == "zoom"


def test_single_scale_and_mg_crop_variants_are_named_runs() -> None:
    plan = load_experiment(EXPERIMENTS / "paper_brats.yaml").pretraining
    for name, scale in (("sar-large", 0), ("sar-medium", 1), ("sar-small", 2)):
        method, options, cubes = plan.run_options(name)
        assert method == "sar" and options["scales"] == [scale] and cubes == {}
        assert options["width_divisor"] == 1  # the shared options still apply
    method, options, cubes = plan.run_options("genesis-mg")
    assert method == "genesis" and cubes["crop_rule"] == "mg" and options["scales"] == [0]


def test_method_options_override_the_shared_ones(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("""
pretraining:
  data: [{path: ct, preset: ct}]
  methods: [sar, genesis, g2]
  options: {width_divisor: 8, lr_unet: 0.1}
  method_options: {genesis: {lr_unet: 1.0}}
  variants: {g2: {method: genesis, restoration_weight: 2}}
finetuning: {inits: [sar, g2, scratch], data: brats2015}
""")
    plan = load_experiment(path).pretraining
    assert plan.run_options("sar")[1]["lr_unet"] == 0.1
    assert plan.run_options("genesis")[1]["lr_unet"] == 1.0
    method, options, _ = plan.run_options("g2")
    assert method == "genesis" and options["lr_unet"] == 1.0 and options["restoration_weight"] == 2
    bad = path.read_text().replace("method: genesis,", "method: genesys,")
    path.write_text(bad)
    with pytest.raises(ConfigError, match="method of variant g2"):
        load_experiment(path)


def test_subset_selector_keeps_luna_subsets_only() -> None:
    source = UnlabeledSource("LUNA16", "ct", subsets=(0, 6))
    assert source.keeps(Path("/d/LUNA16/subset0/1.3.6.mhd"))
    assert source.keeps(Path("/d/LUNA16/subset6/x.mhd"))
    assert not source.keeps(Path("/d/LUNA16/subset7/x.mhd"))
    assert UnlabeledSource("LiTS", "ct").keeps(Path("/d/LiTS/volume-1.nii"))
    with pytest.raises(ConfigError, match="per_volume"):
        UnlabeledSource("x", "ct", per_volume=(1, 2))


def test_set_overrides_and_seeds(tmp_path: Path) -> None:
    config = load_experiment(EXPERIMENTS / "cpu_brats.yaml",
                             ["finetuning.max_steps=3", "pretraining.options.max_steps=2",
                              "finetuning.seeds=[4, 5, 6]"])
    assert config.finetuning.settings["max_steps"] == 3
    assert config.pretraining.options["max_steps"] == 2 and config.seeds == (4, 5, 6)
    ft = config.finetune_config("scratch", 1.0, tmp_path, None, tmp_path, seed=5)
    assert ft.seed == 5 and ft.folds == 4 and ft.preset == "brats"
    assert run_key("sar", 1 / 3, 5) == "sar-1_3-seed5" and run_key("sar", 1.0) == "sar-all"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["finetuning.max_steps"])
    with pytest.raises(ConfigError, match="seeds"):
        load_experiment(EXPERIMENTS / "cpu_brats.yaml", ["finetuning.seeds=[1, 1]"])
