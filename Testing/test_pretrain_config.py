"""Pre-training settings: method defaults, config files, CLI overrides, clear refusals."""

from __future__ import annotations

import json

import pytest
import yaml

from SARCore.cli import main
from SARCore.errors import ConfigError
from SARCore.pretrain.config import PretrainConfig, config_from_mapping


def test_method_defaults_follow_the_paper():
    sar = PretrainConfig(method="sar").resolved()
    assert (sar.optimizer, sar.lr_unet, sar.lr_scale, sar.lr_adversarial) == ("sgd", 1.0, 0.1,
                                                                               0.001)
    assert (sar.restoration_weight, sar.scale_weight, sar.adversarial_weight) == (10, 1, 1)
    assert sar.momentum == 0.9 and sar.loop.batch_size == 6
    genesis = PretrainConfig(method="genesis").resolved()
    assert (genesis.optimizer, genesis.lr_unet, genesis.restoration_weight) == ("sgd", 1.0, 1)
    rotation = PretrainConfig(method="rotation").resolved()
    assert (rotation.optimizer, rotation.lr_unet, rotation.lr_head) == ("adam", 1e-4, 1e-4)
    custom = PretrainConfig(method="cpc", optimizer="sgd", lr_head=0.5).resolved()
    assert (custom.optimizer, custom.lr_unet, custom.lr_head) == ("sgd", 1.0, 0.5)


def test_flat_and_nested_loop_options_and_overrides():
    flat = config_from_mapping({"method": "sa", "epochs": 7, "batch_size": 4})
    nested = config_from_mapping({"method": "sa", "loop": {"epochs": 7, "batch_size": 4}})
    assert flat == nested and flat.loop.epochs == 7
    overridden = config_from_mapping({"method": "sa", "epochs": 7}, "file.yaml",
                                     {"epochs": 3, "scales": [2, 0], "modalities": None})
    assert overridden.loop.epochs == 3 and overridden.scales == (0, 2)
    resolved = overridden.resolved()
    assert config_from_mapping(json.loads(json.dumps(resolved.to_dict()))) == resolved


@pytest.mark.parametrize("options, words", [
    ({"method": "simclr"}, ["method", "simclr"]),
    ({"scales": [3]}, ["scales must be one or more of 0", "3"]),
    ({"scales": [1, 1]}, ["twice"]),
    ({"width_divisor": 3}, ["width_divisor", "3"]),
    ({"modalities": ["PET"]}, ["CT or MRI", "PET"]),
    ({"momentum": 1.5}, ["momentum", "1.5"]),
    ({"val_fraction": 1.0}, ["val_fraction"]),
    ({"lr_unet": -1}, ["lr_unet", "-1"]),
    ({"optimizer": "rmsprop"}, ["optimizer", "rmsprop"]),
    ({"batch_size": 0}, ["batch_size", "0"]),
    ({"epoch": 3}, ["unknown option 'epoch'", "did you mean 'epochs'"]),
    ({"corruption": {"paint": 0.5}}, ["corruption: unknown option 'paint'", "paint_prob"]),
    ({"corruption": {"paint_prob": 2}}, ["corruption: paint_prob", "[0, 1]"]),
])
def test_bad_values_are_refused_clearly(options, words):
    with pytest.raises(ConfigError) as error:
        config_from_mapping(options, "my.yaml")
    message = str(error.value)
    assert message.startswith("my.yaml: ")
    for word in words:
        assert word in message, message


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_cli_usage_errors_exit_2_with_a_message(real_cubes_dir, tmp_path, capsys):
    out = str(tmp_path / "out")
    code, text = run_cli(["pretrain", str(real_cubes_dir), "--out", out, "--width-divisor",
                          "3"], capsys)
    assert code == 2 and "width_divisor must divide 32" in text
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"method": "sar", "learning_rate": 0.1}))
    code, text = run_cli(["pretrain", str(real_cubes_dir), "--out", out, "--config",
                          str(config)], capsys)
    assert code == 2 and str(config) in text and "learning_rate" in text
    with pytest.raises(SystemExit) as exit_info:  # argparse: unknown method name
        main(["pretrain", str(real_cubes_dir), "--out", out, "--method", "simclr"])
    assert exit_info.value.code == 2
    assert "simclr" in capsys.readouterr().err


def test_sar_refuses_single_modality_cubes(real_cubes_dir, tmp_path, capsys):
    code, text = run_cli(["pretrain", str(real_cubes_dir), "--out", str(tmp_path / "out"),
                          "--method", "mial", "--modalities", "CT", "--progress", "json"],
                         capsys)
    assert code == 2
    error = json.loads(text.splitlines()[0])
    assert error["event"] == "error" and "both modalities" in error["message"]
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_config_file_values_reach_the_run(small_real_cubes_dir, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"method": "genesis", "width_divisor": 8, "max_steps": 1,
                                      "batch_size": 2, "val_fraction": 0.0, "seed": 11,
                                      "loop": {"device": "cpu"}}))
    out = tmp_path / "out"
    code, text = run_cli(["pretrain", "--cubes", str(small_real_cubes_dir), "--out", str(out),
                          "--config", str(config), "--batch-size", "4", "--progress", "none"],
                         capsys)
    assert code == 0, text
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == "genesis" and saved["restoration_weight"] == 1.0
    assert saved["loop"]["batch_size"] == 4 and saved["loop"]["seed"] == 11  # CLI wins
    # The saved file is itself a valid config; resuming with another method is refused.
    code, text = run_cli(["pretrain", str(small_real_cubes_dir), "--out", str(out), "--config",
                          str(out / "config.json"), "--method", "sa", "--resume"], capsys)
    assert code == 1 and "method ('genesis' -> 'sa')" in text
