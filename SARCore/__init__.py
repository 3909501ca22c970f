"""SARCore: the engine of SARExtension.

The package layout follows the paper's data flow::

    io -> preprocess -> cubes -> corruptions -> models -> losses
       -> pretrain -> finetune -> inference -> evaluation -> experiment

with ``cli`` on top. Arrays inside SARCore are indexed ``[x, y, z]`` (the transpose of
``SimpleITK.GetArrayFromImage``), so a "64x64x32" cube is a ``(64, 64, 32)`` array and a
batch of cubes a ``(B, 1, 64, 64, 32)`` tensor.
"""

from SARCore.version import __version__

__all__ = ["__version__"]
