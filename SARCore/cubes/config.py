"""Settings of the multi-scale cube generator (paper sec. 2.2).

Defaults and why:

* ``per_volume = (8, 8, 16)`` large, medium, small cubes per volume: the paper's 1:1:2
  ratio. Table 1 lists (19936, 9968, 9968) cubes for 623 LUNA cases and (24320, 12160,
  12160) for 760 BraTS volumes, i.e. 32 small + 16 medium + 16 large per volume (64 +
  32 + 32 for LiTS and MSD heart); our default is half the LUNA/BraTS count, as a small
  set of 1 mm scans gives strongly overlapping large crops beyond that.
* ``crop_rule = "zoom"`` (default, used by every shipped config): a box in physical
  space with the network input's aspect (2:2:1 for 64x64x32) whose in-plane side is the
  scale's fraction (1/2, 1/4, 1/8) of the volume's in-plane extent in mm, shrunk as a
  whole to fit the volume; the resize to 64x64x32 is then the same zoom on all three
  axes. ``"fraction"`` (the earlier rule) takes the fraction of every axis's own side,
  which squashes z by 1.3x (BraTS) to 5x (lung CT) relative to in-plane, and that
  distortion alone tells datasets and modalities apart. ``"mg"``: Models Genesis' own
  single-scale crops, exactly ``cube_shape`` voxels of the preprocessed grid and no
  resize (for a ``genesis`` run that isolates the SA module: give it ``scales: [0]``).
  The zoom and fraction rules multiply the side by
  one random factor in ``[1 - jitter, 1 + jitter]`` per crop (``jitter = 0.1``), so sizes
  vary within a class but classes never overlap (0.55 < 0.45 * 2).
* ``background_threshold = 0.01`` of the [0, 1] range: MRI background is 0 and CT air
  is 0 after clipping to [-1000, 1000] HU; ``min_foreground = 0.1`` rejects crops that
  are more than 90 % background, retrying up to ``max_tries`` positions (then the best
  one tried is kept, so the 1:1:2 ratio holds, and counted as a fallback).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from SARCore.config import (
    check_choice,
    check_positive,
    check_probability,
    from_mapping,
    to_dict,
)
from SARCore.errors import ConfigError

#: Crop side as a fraction of the volume's side, per scale class (0 large, 1 medium, 2 small).
SCALE_FRACTIONS = {0: 1 / 2, 1: 1 / 4, 2: 1 / 8}
SCALE_NAMES = {0: "large", 1: "medium", 2: "small"}
CUBE_SHAPE = (64, 64, 32)
CROP_RULES = ("zoom", "fraction", "mg")


@dataclass(frozen=True)
class CubeConfig:
    """How many cubes of which scales to crop per volume, and how to reject background."""

    per_volume: tuple[int, int, int] = (8, 8, 16)  # large, medium, small
    scales: tuple[int, ...] = (0, 1, 2)  # subset for the scale ablation (paper Table 3)
    seed: int = 0
    min_foreground: float = 0.1
    background_threshold: float = 0.01
    max_tries: int = 20
    jitter: float = 0.1
    cube_shape: tuple[int, int, int] = CUBE_SHAPE
    shard_size: int = 1024  # cubes per .npy shard (1024 x 64x64x32 float16 = 256 MiB)
    crop_rule: str = "zoom"  # "zoom" (same zoom on every axis) | "fraction" (old) | "mg"

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_volume", tuple(self.per_volume))
        object.__setattr__(self, "scales", tuple(sorted(set(self.scales))))
        object.__setattr__(self, "cube_shape", tuple(self.cube_shape))
        if len(self.per_volume) != 3 or any(not isinstance(n, int) or n < 0
                                            for n in self.per_volume):
            raise ConfigError(f"per_volume must be 3 counts (large, medium, small), "
                              f"not {self.per_volume!r}")
        if not self.scales or any(s not in SCALE_FRACTIONS for s in self.scales):
            raise ConfigError(f"scales must be a non-empty subset of 0 1 2, not {self.scales!r}")
        if sum(self.per_volume[s] for s in self.scales) == 0:
            raise ConfigError("per_volume gives no cubes for the chosen scales")
        check_probability("min_foreground", self.min_foreground)
        check_probability("background_threshold", self.background_threshold)
        check_positive("max_tries", self.max_tries, integer=True)
        check_positive("shard_size", self.shard_size, integer=True)
        check_choice("crop_rule", self.crop_rule, CROP_RULES)
        if not 0.0 <= self.jitter < 0.5:
            raise ConfigError(f"jitter must be in [0, 0.5), not {self.jitter!r}")
        if len(self.cube_shape) != 3 or min(self.cube_shape) < 1:
            raise ConfigError(f"cube_shape must be 3 positive sizes, not {self.cube_shape!r}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CubeConfig:
        return from_mapping(cls, data, source="cube config")
