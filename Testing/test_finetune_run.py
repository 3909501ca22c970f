"""Fine-tuning runs on the real BRATS 2015 cases: from a real pre-trained model, from
scratch, interrupted and resumed, and refused when the model cannot take the images."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from finetune_data import coarse_config
from pretrain_data import one_torch_thread

from SARCore.errors import ConfigError, ModelFileError
from SARCore.finetune import finetune
from SARCore.finetune.init import build_network, load_pretrained
from SARCore.inference.model import load_segmentation_model
from SARCore.models.modelfile import load_model_file, save_model_file
from SARCore.progress import NullReporter


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


def test_finetune_from_a_pretrained_model(data_dir: Path, small_pretrained_model: Path,
                                          brats_cache_dir: Path, tmp_path: Path) -> None:
    config = coarse_config(data_dir, init=str(small_pretrained_model),
                           cache_dir=str(brats_cache_dir), width_divisor=0)
    result = finetune(config, tmp_path / "ft")
    header, state = load_model_file(result.model_path, task="segmentation")
    assert header["classes"][0]["name"] == "tumor" and header["classes"][0]["label"] == 1
    assert header["output_activation"] == "sigmoid" and header["out_channels"] == 1
    assert header["preprocess"]["name"] == "brats"
    assert header["preprocess"]["target_spacing"] == [4.0, 4.0, 4.0]
    assert header["patch_size"] == [32, 32, 16] and header["sequences"] == ["flair"]
    assert header["modalities"] == ["MRI"] and header["init"] == "sar"
    assert header["init_model"]["transferred"] == ["encoder", "decoder", "head"]
    split = result.splits[0]
    assert len(split.test) == 1 and len(split.train) + len(split.validation) == 3
    assert not set(header["training_cases"] + header["validation_cases"]) & set(split.test)
    folder = tmp_path / "ft" / "trial_0"
    assert (folder / "metrics.csv").is_file() and (folder / "loss_curves.png").is_file()
    saved = json.loads((folder / "split.json").read_text())
    assert [c["case_id"] for c in saved["test_cases"]] == split.test
    assert Path(saved["test_cases"][0]["label"]).is_file()
    # every layer was trained: no encoder tensor equals its pre-trained value any more
    _, pre = load_model_file(small_pretrained_model)
    assert not torch.equal(state["unet.encoder.0.0.0.weight"], pre["unet.encoder.0.0.0.weight"])
    model = load_segmentation_model(result.model_path)
    assert model.classes[0].name == "tumor" and model.activation == "sigmoid"


def test_pretrained_parts_transfer_and_new_head_stays_random(small_pretrained_model: Path,
                                                             ) -> None:
    pretrained = load_pretrained(small_pretrained_model)
    net, info = build_network(1, 3, 8, pretrained)  # softmax: background + 2 classes
    assert info["init_model"]["transferred"] == ["encoder", "decoder"]
    for name, tensor in net.state_dict().items():
        if name.startswith(("encoder.", "decoder.")):
            assert torch.equal(tensor, pretrained.state["unet." + name]), name
    assert net.head.weight.shape == (3, 8, 1, 1, 1)  # 64 / width_divisor 8 channels in
    _, info = build_network(1, 1, 8, pretrained)  # one class: the restoration head fits
    assert info["init_model"]["transferred"] == ["encoder", "decoder", "head"]
    _, info = build_network(1, 1, 8, pretrained, transfer_head=False)
    assert info["init_model"]["transferred"] == ["encoder", "decoder"]


@pytest.mark.parametrize(("classes", "activation"), [(1, "sigmoid"), (3, "softmax")])
def test_a_fresh_head_starts_from_the_foreground_prior(classes: int, activation: str) -> None:
    torch.manual_seed(0)
    net, _ = build_network(1, classes, 8, None, activation=activation, head_prior=0.05)
    net.eval()
    with torch.no_grad():
        logits = net(torch.randn(2, 1, 32, 32, 16) * 3)
    probs = torch.sigmoid(logits) if activation == "sigmoid" else logits.softmax(1)[:, 1:]
    # every voxel, not only on average: no region starts out marked as tumor
    assert probs.sum(1).max() < 0.1 and abs(probs.sum(1).mean().item() - 0.05) < 0.01
    torch.manual_seed(0)
    default, _ = build_network(1, classes, 8, None, activation=activation, head_prior=0.0)
    assert not torch.equal(default.head.bias, net.head.bias)


def test_the_prior_leaves_a_transferred_head_alone(small_pretrained_model: Path) -> None:
    pretrained = load_pretrained(small_pretrained_model)
    net, _ = build_network(1, 1, 8, pretrained, head_prior=0.05)
    assert torch.equal(net.head.bias, pretrained.state["unet.head.bias"])
    fresh, _ = build_network(1, 1, 8, pretrained, transfer_head=False, head_prior=0.05)
    assert abs(fresh.head.bias.item() - torch.logit(torch.tensor(0.05)).item()) < 1e-5


def test_encoder_only_models_leave_the_decoder_random(small_pretrained_model: Path,
                                                      tmp_path: Path) -> None:
    header, state = load_model_file(small_pretrained_model)
    encoder = {k: v for k, v in state.items() if k.startswith("unet.encoder.")}
    header = {**header, "method": "rotation", "encoder_only": True}
    header.pop("weights_sha256")
    path = save_model_file(tmp_path / "rotation.sarmodel", encoder, header)
    torch.manual_seed(0)
    net, info = build_network(1, 1, 8, load_pretrained(path))
    assert info["init"] == "rotation" and info["init_model"]["transferred"] == ["encoder"]
    assert info["init_model"]["encoder_only"] is True
    assert not torch.equal(net.state_dict()["decoder.0.up.weight"],
                           state["unet.decoder.0.up.weight"])


def test_scratch_with_label_fraction_and_two_trials(data_dir: Path, brats_cache_dir: Path,
                                                    tmp_path: Path) -> None:
    config = coarse_config(data_dir, trials=2, label_fraction=0.5, max_steps=2,
                           cache_dir=str(brats_cache_dir))
    result = finetune(config, tmp_path / "scratch")
    assert [s.name for s in result.splits] == ["trial_0", "trial_1"]
    for split in result.splits:  # 3 training cases, half kept -> 2 (1 trains, 1 validates)
        assert len(split.train) == 1 and len(split.validation) == 1 and len(split.test) == 1
        assert (tmp_path / "scratch" / split.name / "model.sarmodel").is_file()
    assert result.splits[0].test != result.splits[1].test
    header, _ = load_model_file(result.model_path)
    assert header["init"] == "scratch" and header["init_model"] is None
    assert header["selected_split"] == result.selected_split
    assert header["label_fraction"] == 0.5 and header["width_divisor"] == 8


class _StopAt(NullReporter):
    """Stops a run like Ctrl-C does, after ``step`` optimizer steps."""

    def __init__(self, step: int):
        self.step = step

    def progress(self, step: int, total: int, message: str = "", **extra: Any) -> None:
        if extra.get("stage", "").startswith("finetune") and step >= self.step:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_to_the_same_weights(data_dir: Path, brats_cache_dir: Path,
                                                     tmp_path: Path) -> None:
    config = coarse_config(data_dir, epochs=3, max_steps=0, checkpoint_every=1,
                           cache_dir=str(brats_cache_dir))
    straight = finetune(config, tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        finetune(config, tmp_path / "resumed", reporter=_StopAt(4))
    assert not (tmp_path / "resumed" / "trial_0" / "done.json").exists()
    resumed = finetune(config, tmp_path / "resumed", resume=True)
    assert resumed.splits[0].steps == straight.splits[0].steps
    _, a = load_model_file(straight.model_path)
    _, b = load_model_file(resumed.model_path)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    again = finetune(config, tmp_path / "resumed", resume=True)  # complete: nothing to do
    assert again.model_path == resumed.model_path


def test_existing_run_needs_resume_and_the_same_settings(data_dir: Path, brats_cache_dir: Path,
                                                         tmp_path: Path) -> None:
    config = coarse_config(data_dir, max_steps=1, epochs=1, cache_dir=str(brats_cache_dir))
    finetune(config, tmp_path / "run")
    with pytest.raises(ConfigError, match="--resume"):
        finetune(config, tmp_path / "run")
    with pytest.raises(ConfigError, match="label_fraction"):
        finetune(replace(config, label_fraction=0.5), tmp_path / "run", resume=True)


def test_model_that_cannot_take_the_images_is_refused(data_dir: Path, small_pretrained_model: Path,
                                                      tmp_path: Path) -> None:
    header, state = load_model_file(small_pretrained_model)
    header = {**header, "modalities": ["CT"]}
    header.pop("weights_sha256")
    ct_only = save_model_file(tmp_path / "ct_only.sarmodel", state, header)
    with pytest.raises(ModelFileError, match="pre-trained on CT but these images are MRI"):
        finetune(coarse_config(data_dir, init=str(ct_only), width_divisor=0), tmp_path / "b")
    with pytest.raises(ConfigError, match="scratch only"):
        finetune(coarse_config(data_dir, init=str(small_pretrained_model), width_divisor=4),
                 tmp_path / "c")
    assert not (tmp_path / "b").exists()
