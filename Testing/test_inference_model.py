"""Reading a segmentation model file: what the header must say, and clear refusals."""

from __future__ import annotations

import pytest
from inference_models import header_for

from SARCore.errors import ModelFileError
from SARCore.inference.model import DEFAULT_COLORS, load_segmentation_model
from SARCore.models import UNet3D, save_model_file


def _save(tmp_path, out_channels: int = 1, in_channels: int = 1, **fields):
    header = header_for(out_channels=out_channels, in_channels=in_channels, **fields)
    path = tmp_path / "m.sarmodel"
    save_model_file(path, UNet3D(in_channels, out_channels, 8).state_dict(), header)
    return path


def test_fields_are_read(tmp_path) -> None:
    model = load_segmentation_model(_save(tmp_path, preset="brats", spacing=(2, 2, 2)))
    assert model.activation == "sigmoid" and model.sequences == ("flair",)
    assert model.modalities == ("MRI",) and model.patch_size == (64, 64, 32)
    assert model.preset.target_spacing == (2.0, 2.0, 2.0)
    assert model.preset.normalization == "zscore_nonzero"
    assert model.preset.min_shape == (1, 1, 1)  # inference pads small scans itself
    [tumor] = model.classes
    assert (tumor.name, tumor.label, tumor.color) == ("tumor", 1, (0.9, 0.2, 0.1))
    assert not model.net.training


def test_softmax_defaults_names_and_colors(tmp_path) -> None:
    model = load_segmentation_model(_save(tmp_path, out_channels=3, classes=[{}, {}],
                                          sequences=()))
    assert model.activation == "softmax"
    assert [c.name for c in model.classes] == ["class_1", "class_2"]
    assert [c.label for c in model.classes] == [1, 2]
    assert model.classes[1].color == DEFAULT_COLORS[1]


@pytest.mark.parametrize("fields, message", [
    ({"out_channels": 2, "activation": "sigmoid"}, "sigmoid model must have one output"),
    ({"out_channels": 3, "classes": [{"name": "a", "label": 1}]}, "lists 1 classes but"),
    ({"activation": "relu"}, "unknown output_activation"),
    ({"sequences": ("flair", "t1c")}, "lists 2 sequences"),
    ({"sequences": ("dwi",)}, "unknown sequence"),
    ({"classes": [{"name": "a", "label": 1, "color": [2, 0, 0]}]}, "color must be 3 numbers"),
    ({"patch_size": [60, 64, 32]}, "multiples of 8"),
])
def test_bad_headers_are_refused(tmp_path, fields, message) -> None:
    path = _save(tmp_path, **fields)
    with pytest.raises(ModelFileError, match=message) as info:
        load_segmentation_model(path)
    assert info.value.path == str(path)


def test_pretraining_model_is_not_a_segmentation_model(tmp_path) -> None:
    path = _save(tmp_path)
    header = header_for()
    header["task"] = "pretrain"
    save_model_file(path, UNet3D(1, 1, 8).state_dict(), header)
    with pytest.raises(ModelFileError, match="task='pretrain'"):
        load_segmentation_model(path)


def test_missing_preset_is_refused(tmp_path) -> None:
    header = header_for()
    del header["preprocess"]
    path = tmp_path / "m.sarmodel"
    save_model_file(path, UNet3D(1, 1, 8).state_dict(), header)
    with pytest.raises(ModelFileError, match="no 'preprocess' preset"):
        load_segmentation_model(path)
