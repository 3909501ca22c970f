"""Multi-scale cubes for pre-training (paper sec. 2.2): crop, resize, store, read back.

:func:`build_cubes` writes a cube store; :class:`CubeDataset` reads it memory-mapped.
"""

from SARCore.cubes.config import SCALE_FRACTIONS, SCALE_NAMES, CubeConfig
from SARCore.cubes.generator import build_cubes
from SARCore.cubes.store import CubeDataset, CubeStoreInfo, split_cases

__all__ = ["SCALE_FRACTIONS", "SCALE_NAMES", "CubeConfig", "CubeDataset", "CubeStoreInfo",
           "build_cubes", "split_cases"]
