"""Settings of the Models Genesis corruptions (method-spec "Corruptions (MG generate_pair)").

The defaults are MG's: flips with probability 0.4 up to 3 times, local pixel shuffling
0.5 with 10,000 blocks, the Bezier intensity transform 0.9 (half of them inverted),
painting 0.9 of which 80 % outer and 20 % inner, boxes added while a draw stays under
0.95. Box side ranges (dim//6..dim//3 inner, dim - [3*dim//7, 4*dim//7] outer), the
3-voxel border margin and the shuffling block side (1..dim//10) are MG constants kept
in the transform modules.

``shuffle_pool`` is ours, not MG's: local pixel shuffling draws that many permutations
per block shape and batch, and each block picks one of them uniformly. Every block's
permutation is still exactly uniform and independent of its position, size and draw
order; only two blocks of the same shape in the same batch may share one (probability
1/shuffle_pool per pair). It removes the largest cost of the corruptions (sorting random
keys for each of the ~245,000 block voxels of a 64x64x32 cube); 0 gives every block its
own permutation, MG's law exactly (see :mod:`SARCore.corruptions.local_shuffle`).
"""

from __future__ import annotations

import dataclasses

from SARCore.config import check_positive, check_probability
from SARCore.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class CorruptionConfig:
    """Probabilities and counts of the four corruptions; validated on creation."""

    flip_prob: float = 0.4
    max_flips: int = 3
    shuffle_prob: float = 0.5
    shuffle_blocks: int = 10000
    shuffle_pool: int = 64  # permutations per block shape and batch; 0: one per block
    nonlinear_prob: float = 0.9
    invert_prob: float = 0.5
    bezier_points: int = 1000
    paint_prob: float = 0.9
    outer_paint_prob: float = 0.8
    inner_boxes_max: int = 5
    outer_boxes_max: int = 5
    box_continue_prob: float = 0.95

    def __post_init__(self) -> None:
        for name in ("flip_prob", "shuffle_prob", "nonlinear_prob", "invert_prob",
                     "paint_prob", "outer_paint_prob", "box_continue_prob"):
            check_probability(name, getattr(self, name))
        for name in ("max_flips", "shuffle_blocks", "inner_boxes_max", "outer_boxes_max"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("bezier_points", self.bezier_points, integer=True)
        if isinstance(self.shuffle_pool, bool) or not isinstance(self.shuffle_pool, int) or (
                self.shuffle_pool < 0):
            raise ConfigError(f"shuffle_pool must be 0 (one permutation per block) or a "
                              f"positive integer, not {self.shuffle_pool!r}")
        if self.bezier_points < 2:
            raise ConfigError(f"bezier_points must be at least 2, not {self.bezier_points!r}")
