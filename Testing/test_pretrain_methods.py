"""Every pre-training method trains through the CLI on real cubes and leaves a usable model."""

from __future__ import annotations

import json

import pytest
import torch
from pretrain_data import one_torch_thread

from SARCore.cli import main
from SARCore.models.modelfile import build_unet, load_model_file
from SARCore.models.unet3d import UNet3D
from SARCore.pretrain.methods import METHODS
from SARCore.training.metrics_log import read_metrics_csv

#: The metric each method logs besides its loss terms.
METRICS = {"sar": ("restoration", "scale", "adversarial", "scale_acc", "disc_acc"),
           "genesis": ("restoration",), "sa": ("restoration", "scale", "scale_acc"),
           "mial": ("restoration", "adversarial", "disc_acc"), "rotation": ("rotation_acc",),
           "rpl": ("rpl_acc",), "jigsaw": ("jigsaw_acc",), "cpc": ("cpc_acc",)}


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, list[dict]]:
    with one_torch_thread():
        code = main(args)
    lines = capsys.readouterr().out.splitlines()
    return code, [json.loads(line) for line in lines if line.startswith("{")]


#: sar and the baselines on the paper's 64x64x32 cubes (the baselines' crops and grids need
#: them); genesis, sa and mial on 32x32x16 cubes, 8x cheaper for the full-size decoder.
SMALL_CUBES = ("genesis", "sa", "mial")


@pytest.mark.parametrize("method", list(METHODS))
def test_method_trains_and_saves_a_model(method, real_cubes_dir, small_real_cubes_dir,
                                         tmp_path, capsys):
    out, cubes = tmp_path / method, small_real_cubes_dir if method in SMALL_CUBES \
        else real_cubes_dir
    code, events = run_cli(["pretrain", str(cubes), "--out", str(out), "--method", method,
                            "--width-divisor", "8", "--batch-size", "2", "--max-steps", "2",
                            "--channels-last", "--device", "cpu", "--progress", "json"],
                           capsys)
    assert code == 0, events
    assert [e["step"] for e in events  # the training bar starts at 0 %
            if e["event"] == "progress" and e.get("stage") == "pretrain"] == [0, 1, 2]
    assert events[-1]["event"] == "done" and events[-1]["global_step"] == 2

    header, state = load_model_file(out / "model.sarmodel", task="pretrain",
                                    architecture="mg_unet3d", in_channels=1)
    assert header["method"] == method and header["width_divisor"] == 8
    assert header["modalities"] == ["CT", "MRI"] and header["scales"] == [0, 1, 2]
    assert (header["input_size"], header["n_cubes"]) == (
        ([32, 32, 16], 64) if method in SMALL_CUBES else ([64, 64, 32], 16))
    assert header["encoder_only"] is METHODS[method].encoder_only
    assert header["epochs"] == 1 and header["best_epoch"] == 1
    if header["encoder_only"]:
        # Fine-tuning loads the encoder; the decoder is not in the file.
        assert all(key.startswith(("unet.encoder.", "head.")) for key in state)
        encoder = {k[len("unet.encoder."):]: v for k, v in state.items()
                   if k.startswith("unet.encoder.")}
        UNet3D(1, 1, 8).encoder.load_state_dict(encoder, strict=True)
    else:
        unet = build_unet(header, state).eval()
        with torch.no_grad():
            cube = torch.rand(1, 1, *header["input_size"])
            assert unet(cube).shape == cube.shape

    rows = read_metrics_csv(out / "metrics.csv")
    assert len(rows) == 1 and rows[0]["step"] == 2
    for term in ("loss", *METRICS[method]):
        assert f"train_{term}" in rows[0] and f"val_{term}" in rows[0], term
    assert (out / "loss_curves.png").stat().st_size > 1000
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == method and saved["loop"]["max_steps"] == 2
    assert saved["optimizer"] == ("adam" if METHODS[method].encoder_only else "sgd")
