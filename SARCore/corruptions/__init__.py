"""Models Genesis restoration corruptions, batched in torch (flip, local pixel shuffling,
Bezier intensity transform, in-/out-painting).

Each transform is a sampler (``sample_*_params``: draws a batch's parameters from a
``torch.Generator``) plus a deterministic ``apply_*``; :class:`ModelsGenesisCorruption`
chains them like MG's ``generate_pair``.
"""

from SARCore.corruptions.config import CorruptionConfig
from SARCore.corruptions.flip import FlipParams, apply_flip, sample_flip_params
from SARCore.corruptions.local_shuffle import ShuffleParams, apply_shuffle, sample_shuffle_params
from SARCore.corruptions.nonlinear import NonlinearParams, apply_nonlinear, sample_nonlinear_params
from SARCore.corruptions.painting import PaintParams, apply_paint, sample_paint_params
from SARCore.corruptions.pipeline import (
                                          CorruptionParams,
                                          CorruptionRecord,
                                          CorruptionResult,
                                          ModelsGenesisCorruption,
                                          validate_batch,
)
from SARCore.corruptions.rng import RandomSource

__all__ = [
    "CorruptionConfig",
    "CorruptionParams",
    "CorruptionRecord",
    "CorruptionResult",
    "FlipParams",
    "ModelsGenesisCorruption",
    "NonlinearParams",
    "PaintParams",
    "RandomSource",
    "ShuffleParams",
    "apply_flip",
    "apply_nonlinear",
    "apply_paint",
    "apply_shuffle",
    "sample_flip_params",
    "sample_nonlinear_params",
    "sample_paint_params",
    "sample_shuffle_params",
    "validate_batch",
]
