"""Presets: the paper's values, overrides, JSON round trip, and clear errors."""

from __future__ import annotations

import json

import pytest

from SARCore.errors import ConfigError
from SARCore.preprocess import PRESETS, Preset, get_preset


def test_builtin_values_follow_the_paper():
    assert PRESETS["ct"].clip == (-1000.0, 1000.0) and PRESETS["ct"].modality == "CT"
    assert PRESETS["mri"].clip == (0.0, 4000.0) and PRESETS["mri"].modality == "MRI"
    for name in ("ct", "mri", "brats", "pancreas"):
        assert PRESETS[name].target_spacing == (1.0, 1.0, 1.0)
        assert PRESETS[name].interpolation == "bspline"
    assert PRESETS["brats"].normalization == "zscore_nonzero" and PRESETS["brats"].clip is None
    pancreas = PRESETS["pancreas"]
    assert (pancreas.clip, pancreas.shift, pancreas.scale) == ((-96.0, 215.0), 77.99, 75.40)


def test_overrides_and_none_means_keep():
    preset = get_preset("ct", target_spacing=[2, 2, 3], clip=None, label_map=[[4, 3]])
    assert preset.target_spacing == (2.0, 2.0, 3.0)
    assert preset.clip == (-1000.0, 1000.0)
    assert preset.label_map == ((4, 3),)
    assert PRESETS["ct"].target_spacing == (1.0, 1.0, 1.0)  # the registry is untouched


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name):
    preset = get_preset(name, target_spacing=(0.8, 0.8, 2.5), label_map=[(2, 1)])
    assert Preset.from_dict(json.loads(json.dumps(preset.to_dict()))) == preset


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'brats'"):
        get_preset("brast")


@pytest.mark.parametrize("overrides, words", [
    ({"spacing": (1, 1, 1)}, "did you mean 'target_spacing'"),
    ({"clip": (100, -100)}, "low < high"),
    ({"target_spacing": (1, 0, 1)}, "positive"),
    ({"target_spacing": (1, 1)}, "3 numbers"),
    ({"normalization": "zscore"}, "normalization must be one of"),
    ({"modality": "PET"}, "modality must be one of"),
    ({"label_map": [(1, -1)]}, "label_map"),
])
def test_bad_overrides(overrides, words):
    with pytest.raises(ConfigError, match=words):
        get_preset("ct", **overrides)


def test_from_dict_rejects_unknown_keys():
    data = PRESETS["mri"].to_dict() | {"colour": "red"}
    with pytest.raises(ConfigError, match="colour"):
        Preset.from_dict(data)
