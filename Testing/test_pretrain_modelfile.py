"""A pre-trained model file: its header, ``sar info``, and refusal of files that do not fit
or were altered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pretrain_data import one_torch_thread

from SARCore.cli import main
from SARCore.errors import ModelFileError
from SARCore.models.modelfile import build_unet, load_model_file, read_header, save_model_file
from SARCore.pretrain.config import config_from_mapping
from SARCore.pretrain.runner import pretrain

HEADER_FIELDS = ("name", "task", "architecture", "width_divisor", "in_channels", "out_channels",
                 "input_size", "method", "scales", "modalities", "preprocess", "n_cubes",
                 "epochs", "best_epoch", "val_loss", "encoder_only", "weights_sha256")


@pytest.fixture(scope="module")
def model_file(small_real_cubes_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SAR pre-trained for one step on real CT + MRI cubes."""
    config = config_from_mapping({"method": "sar", "width_divisor": 8, "max_steps": 1,
                                  "batch_size": 2, "scales": [0, 2], "device": "cpu",
                                  "name": "tiny-sar"})
    with one_torch_thread():
        return pretrain(config, small_real_cubes_dir, tmp_path_factory.mktemp("sar")).model_path


def rewrite(source: Path, target: Path, change) -> Path:
    """A copy of a model file with its raw payload edited by ``change`` (no re-hashing)."""
    payload = torch.load(source, weights_only=True)
    change(payload)
    torch.save(payload, target)
    return target


def test_header_round_trip(model_file):
    header, state = load_model_file(model_file, task="pretrain", architecture="mg_unet3d",
                                    in_channels=1)
    for field in HEADER_FIELDS:
        assert field in header, field
    assert header["name"] == "tiny-sar" and header["method"] == "sar"
    assert header["scales"] == [0, 2] and header["modalities"] == ["CT", "MRI"]
    assert header["losses"] == ["restoration", "scale", "adversarial"]
    assert header["epochs"] == 1 and header["encoder_only"] is False
    assert any(key.startswith("scale_head.") for key in state)
    unet = build_unet(header, state)
    reloaded = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    assert all(torch.equal(v, state[k]) for k, v in reloaded.items())


def test_info_prints_the_header(model_file, capsys):
    assert main(["info", str(model_file), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in shown.items() if k in read_header(model_file)} == read_header(
        model_file)
    assert shown["n_tensors"] > 0
    assert main(["info", str(model_file)]) == 0
    text = capsys.readouterr().out
    assert "method" in text and "sar" in text and "mg_unet3d" in text


@pytest.mark.parametrize("option, value, words", [
    ("--task", "segmentation", "task='pretrain' but 'segmentation' is needed"),
    ("--architecture", "resnet3d", "architecture='mg_unet3d' but 'resnet3d' is needed"),
    ("--in-channels", "4", "in_channels=1 but 4 is needed"),
])
def test_info_refuses_a_model_that_does_not_fit(model_file, capsys, option, value, words):
    assert main(["info", str(model_file), option, value]) == 1
    assert words in capsys.readouterr().err


def test_tampered_weights_are_refused(model_file, tmp_path, capsys):
    def nudge(payload):
        name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
        payload["state_dict"][name] = payload["state_dict"][name] + 1e-3

    tampered = rewrite(model_file, tmp_path / "tampered.sarmodel", nudge)
    with pytest.raises(ModelFileError, match="checksum"):
        load_model_file(tampered)
    assert main(["info", str(tampered)]) == 1
    assert "altered or damaged" in capsys.readouterr().err


def test_truncated_and_future_files_are_refused(model_file, tmp_path):
    truncated = tmp_path / "truncated.sarmodel"
    truncated.write_bytes(model_file.read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="not a readable SAR model file"):
        load_model_file(truncated)
    future = rewrite(model_file, tmp_path / "future.sarmodel",
                     lambda payload: payload.update(format_version=99))
    with pytest.raises(ModelFileError, match="version 99 is not supported"):
        load_model_file(future)


def test_header_that_does_not_match_the_weights_is_refused(model_file, tmp_path):
    header, state = load_model_file(model_file)
    header.pop("weights_sha256")
    other = save_model_file(tmp_path / "arch.sarmodel", state,
                            {**header, "architecture": "resnet3d"})
    with pytest.raises(ModelFileError, match="unknown architecture 'resnet3d'"):
        build_unet(*load_model_file(other), path=other)
    channels = save_model_file(tmp_path / "channels.sarmodel", state,
                               {**header, "in_channels": 2})
    with pytest.raises(ModelFileError, match="weights do not fit"):
        build_unet(*load_model_file(channels), path=channels)
