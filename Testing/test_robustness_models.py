"""Robustness: model files, checkpoints and training never carry wrong numbers in silence.

A model file's checksum covers its header and its weights; NaN/Inf weights are never
written and always refused; a diverging run stops at the first non-finite loss or weight
with the step and the likely cause, and leaves no model or checkpoint behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from finetune_data import coarse_config
from inference_models import header_for
from robustness_faults import assert_no_traceback, errors, sar

from SARCore.errors import ModelFileError, TrainingError
from SARCore.finetune import finetune
from SARCore.finetune.init import load_pretrained
from SARCore.models import UNet3D, load_model_file, read_header, save_model_file
from SARCore.models.modelfile import TAMPERED, file_digest, weights_digest
from SARCore.training.checkpoint import save_checkpoint
from SARCore.training.finite import check_loss, check_weights


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = UNet3D(1, 1, 8)
    path = tmp_path_factory.mktemp("models") / "good.sarmodel"
    return save_model_file(path, net.state_dict(), header_for())


def _payload(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _edited(source: Path, target: Path, change) -> Path:
    payload = _payload(source)
    change(payload)
    torch.save(payload, target)
    return target


def _header_edit(key: str, value):
    def change(payload: dict) -> None:
        header = json.loads(payload["header_json"])
        header[key] = value
        payload["header_json"] = json.dumps(header)
    return change


def _nan_weights(payload: dict) -> None:
    """NaN weights with every checksum recomputed: what a diverged run would have saved."""
    state = payload["state_dict"]
    state[next(iter(state))].fill_(float("nan"))
    header = json.loads(payload["header_json"])
    header["weights_sha256"] = weights_digest(state)
    payload["header_json"] = json.dumps(header)
    payload["file_sha256"] = file_digest(payload["header_json"], header["weights_sha256"])


def test_intact_file_loads(model_file: Path) -> None:
    header, state = load_model_file(model_file)
    assert header["classes"][0]["name"] == "tumor" and state
    assert read_header(model_file) == header


@pytest.mark.parametrize("change", [
    _header_edit("classes", [{"name": "not-a-tumor", "label": 1, "color": [0, 1, 0]}]),
    _header_edit("preprocess", {"name": "brats", "normalization": "none"}),
    _header_edit("name", "renamed"),
])
def test_edited_header_is_refused_like_tampered_weights(tmp_path: Path, model_file: Path,
                                                        change) -> None:
    edited = _edited(model_file, tmp_path / "edited.sarmodel", change)
    with pytest.raises(ModelFileError, match="altered or damaged") as caught:
        load_model_file(edited)
    assert caught.value.problem == TAMPERED and caught.value.path == str(edited)


def test_edited_weights_are_refused(tmp_path: Path, model_file: Path) -> None:
    def change(payload: dict) -> None:
        tensor = payload["state_dict"][next(iter(payload["state_dict"]))]
        tensor.add_(1e-3)
    with pytest.raises(ModelFileError, match="altered or damaged"):
        load_model_file(_edited(model_file, tmp_path / "w.sarmodel", change))


def test_missing_file_checksum_is_refused(tmp_path: Path, model_file: Path) -> None:
    edited = _edited(model_file, tmp_path / "old.sarmodel", lambda p: p.pop("file_sha256"))
    with pytest.raises(ModelFileError, match="altered or damaged"):
        load_model_file(edited)


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, b"PK\x03\x04garbage"])
def test_zero_byte_and_malformed_files(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.sarmodel"
    bad.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a readable SAR model file"):
        load_model_file(bad)


def test_invalid_header_values_are_refused(tmp_path: Path) -> None:
    header = header_for()
    header["in_channels"] = "one"
    path = save_model_file(tmp_path / "h.sarmodel", UNet3D(1, 1, 8).state_dict(), header)
    with pytest.raises(ModelFileError, match="in_channels must be a positive integer"):
        load_model_file(path)


def test_nan_weights_are_never_saved(tmp_path: Path) -> None:
    state = UNet3D(1, 1, 8).state_dict()
    state[next(iter(state))].fill_(float("inf"))
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        save_model_file(tmp_path / "nan.sarmodel", state, header_for())
    assert list(tmp_path.iterdir()) == []


def test_nan_weights_are_refused_on_loading(tmp_path: Path, model_file: Path) -> None:
    nan = _edited(model_file, tmp_path / "nan.sarmodel", _nan_weights)
    with pytest.raises(ModelFileError, match="NaN or infinite") as caught:
        load_model_file(nan)
    assert "diverged" in str(caught.value)
    with pytest.raises(ModelFileError, match="NaN or infinite") as caught:
        load_pretrained(nan)  # finetune --init: named as NaN weights, not as a learning rate
    assert "learning rate" not in str(caught.value)


def test_info_refuses_a_tampered_file_with_one_line(tmp_path: Path, model_file: Path) -> None:
    path = _edited(model_file, tmp_path / "tampered.sarmodel", _header_edit("name", "x"))
    code, events, stderr = sar("info", str(path))
    assert code == 1, stderr
    assert_no_traceback(stderr)
    [message] = errors(events)
    assert str(path) in message and "altered or damaged" in message


def test_info_refuses_nan_weights(tmp_path: Path, model_file: Path, capsys) -> None:
    from SARCore.cli import main

    path = _edited(model_file, tmp_path / "nan.sarmodel", _nan_weights)
    assert main(["info", str(path), "--progress", "json"]) == 1
    [message] = errors([json.loads(line) for line in capsys.readouterr().out.splitlines()])
    assert str(path) in message and "NaN or infinite" in message


def test_segment_refuses_a_nan_model(tmp_path: Path, model_file: Path, mri_tcga: Path) -> None:
    nan = _edited(model_file, tmp_path / "nan.sarmodel", _nan_weights)
    code, events, stderr = sar("segment", str(mri_tcga), "--model", str(nan), "--out",
                               str(tmp_path / "seg"))
    assert code == 1 and "NaN or infinite" in errors(events)[0]
    assert_no_traceback(stderr)
    assert not list((tmp_path / "seg").glob("*.nii.gz"))


def test_checkpoint_writer_refuses_nan(tmp_path: Path) -> None:
    state = {"model": {"w": torch.tensor([1.0, float("nan")])}, "global_step": 3}
    with pytest.raises(TrainingError, match="NaN or infinite"):
        save_checkpoint(tmp_path / "last.ckpt", state)
    assert not (tmp_path / "last.ckpt").exists()


def test_finite_checks_name_the_step_and_cause() -> None:
    with pytest.raises(TrainingError, match="at step 0") as first:
        check_loss(torch.tensor(float("nan")), 0, "finetune", 1e-3)
    assert "input data or the initial model" in first.value.hint
    with pytest.raises(TrainingError, match="weights became NaN or infinite at step 7") as later:
        check_weights([torch.tensor([1.0, float("inf")])], 7, "finetune", 0.5)
    assert "lower the learning rate (now 0.5)" in later.value.hint
    check_weights([torch.ones(3)], 7, "finetune", 0.5)  # finite: no error


def test_diverging_finetune_stops_and_saves_nothing(data_dir: Path, brats_cache_dir: Path,
                                                    tmp_path: Path) -> None:
    config = coarse_config(data_dir, lr=1e30, max_steps=3, epochs=1,
                           cache_dir=str(brats_cache_dir))
    out = tmp_path / "diverged"
    with pytest.raises(TrainingError, match=r"(loss|weights) became .* at step \d+") as caught:
        finetune(config, out)
    assert "lower the learning rate" in caught.value.hint
    assert not list(out.rglob("*.sarmodel")) and not list(out.rglob("*.ckpt"))
