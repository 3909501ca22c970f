"""The four encoder-only baselines of Table 2 (Taleb et al. 2020) as task objects.

A task builds its head and computes one training step's loss from a batch of clean
pre-training cubes; the trainer owns the optimizer, the U-Net and the loop::

    task = BASELINE_TASKS["jigsaw"]
    head = task.build_head(unet.encoder_channels, unet.width_divisor)
    out = task.step(unet, head, cubes, generator)   # {"loss": ..., "jigsaw_acc": ...}

Random crops and CPC's border masking are used while ``head.training``; in ``eval()``
crops are centred, so a validation pass with a seeded generator is reproducible.

CPC uses InfoNCE instead of Taleb's loss. Taleb score each context with one positive and
one negative target sequence through a sigmoid and binary cross-entropy (16 + 16 pairs
per volume), encoding the negatives a second time. InfoNCE (van den Oord et al. 2018,
the loss CPC was defined with) scores every prediction against all target codes of the
batch in one softmax: B*32 - 1 negatives instead of 1 for the same encoder work, a
stronger and lower-variance signal, and a bound on mutual information.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from SARCore.errors import ConfigError
from SARCore.models.baselines import CPCHead, DenseClassifier, encode_patches, pooled_bottom
from SARCore.models.unet3d import UNet3D
from SARCore.pretrain import proxy_tasks as proxy
from SARCore.pretrain.permutations import N_CANDIDATES, N_PERMUTATIONS, jigsaw_permutations


class BaselineTask(Protocol):
    name: str
    n_classes: int | None

    def build_head(self, encoder_channels: tuple[int, ...], width_divisor: int) -> nn.Module: ...

    def step(self, unet: UNet3D, head: nn.Module, cubes: Tensor, generator: torch.Generator
             ) -> dict[str, Tensor]: ...


def _classification(logits: Tensor, labels: Tensor, metric: str) -> dict[str, Tensor]:
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
    return {"loss": loss, metric: accuracy}


def _min_batch(head: nn.Module) -> int:
    """Batch norm in the heads needs two samples per batch while training."""
    return 2 if head.training else 1


def info_nce(predictions: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """``(N, D)`` predictions, ``(N, D)`` matching targets -> (loss, top-1 accuracy).

    Row ``n`` of the dot-product matrix has its positive at column ``n``; every other
    target of the batch is a negative.
    """
    logits = predictions @ targets.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
    return loss, accuracy


@dataclass(frozen=True)
class RotationTask:
    """10-way rotation of a cubic crop (identity; 90/180/270 degrees in x-y, y-z, x-z)."""

    name: ClassVar[str] = "rotation"
    n_classes: ClassVar[int] = proxy.N_ROTATIONS
    crop: tuple[int, int, int] = (32, 32, 32)

    def __post_init__(self) -> None:
        side = self.crop[0] if isinstance(self.crop, tuple) and self.crop else None
        if (not isinstance(side, int) or side < 8 or side % 8 or len(self.crop) != 3
                or any(s != side for s in self.crop)):
            raise ConfigError(f"rotation crop must be a cube with sides a multiple of 8 "
                              f"(e.g. (32, 32, 32)), not {self.crop!r}")

    def build_head(self, encoder_channels: tuple[int, ...], width_divisor: int) -> nn.Module:
        return DenseClassifier(encoder_channels[-1], self.n_classes, width_divisor)

    def step(self, unet: UNet3D, head: nn.Module, cubes: Tensor, generator: torch.Generator
             ) -> dict[str, Tensor]:
        proxy.check_cubes(cubes, _min_batch(head))
        inputs, labels = proxy.sample_rotation_batch(cubes, generator, self.crop,
                                                     random_position=head.training)
        return _classification(head(pooled_bottom(unet, inputs)), labels, "rotation_acc")


@dataclass(frozen=True)
class RelativePatchLocationTask:
    """Where is this patch relative to the centre one? 26 classes on a 3x3x3 grid."""

    name: ClassVar[str] = "rpl"
    grid: proxy.PatchGrid = field(default_factory=proxy.PatchGrid)

    @property
    def n_classes(self) -> int:
        return self.grid.n_cells - 1

    def build_head(self, encoder_channels: tuple[int, ...], width_divisor: int) -> nn.Module:
        return DenseClassifier(2 * encoder_channels[-1], self.n_classes, width_divisor)

    def step(self, unet: UNet3D, head: nn.Module, cubes: Tensor, generator: torch.Generator
             ) -> dict[str, Tensor]:
        proxy.check_cubes(cubes, _min_batch(head))
        patches, labels = proxy.sample_rpl_batch(cubes, generator, self.grid,
                                                 random_crops=head.training)
        return _classification(head(encode_patches(unet, patches)), labels, "rpl_acc")


@dataclass(frozen=True)
class JigsawTask:
    """Which of the fixed permutations shuffled the 27 patches? 100 classes."""

    name: ClassVar[str] = "jigsaw"
    grid: proxy.PatchGrid = field(default_factory=proxy.PatchGrid)
    n_permutations: int = N_PERMUTATIONS

    def __post_init__(self) -> None:
        value = self.n_permutations
        if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= N_CANDIDATES:
            raise ConfigError(f"n_permutations must be an integer in 2..{N_CANDIDATES}, "
                              f"not {value!r}")

    @property
    def n_classes(self) -> int:
        return self.n_permutations

    @property
    def permutations(self) -> Tensor:
        """The fixed permutation set (``permutations.py``), ``(n_permutations, n_cells)``."""
        return jigsaw_permutations(self.n_permutations, self.grid.n_cells)

    def build_head(self, encoder_channels: tuple[int, ...], width_divisor: int) -> nn.Module:
        return DenseClassifier(self.grid.n_cells * encoder_channels[-1], self.n_classes,
                               width_divisor)

    def step(self, unet: UNet3D, head: nn.Module, cubes: Tensor, generator: torch.Generator
             ) -> dict[str, Tensor]:
        proxy.check_cubes(cubes, _min_batch(head))
        patches, labels = proxy.sample_jigsaw_batch(cubes, generator, self.grid,
                                                    self.permutations, random_crops=head.training)
        return _classification(head(encode_patches(unet, patches)), labels, "jigsaw_acc")


@dataclass(frozen=True)
class CPCTask:
    """Contrastive predictive coding on a 4x4x4 grid of 16x16x8 patches (InfoNCE).

    Rows run along x: each of the 16 columns ``(y, z)`` is summarised by a GRU over a
    pyramid of context cells in rows 0-1 (3x3 in row 0, the column's own cell in row 1)
    and predicts the codes of its cells in rows 2 and 3 (``proxy_tasks.cpc_layout``).
    """

    name: ClassVar[str] = "cpc"
    n_classes: ClassVar[None] = None
    grid: tuple[int, int, int] = (4, 4, 4)
    context_rows: int = 2
    keep_fraction: float = 7 / 8

    def __post_init__(self) -> None:
        proxy.cpc_layout(self.grid, self.context_rows)  # validates both
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ConfigError(f"keep_fraction must be in (0, 1], not {self.keep_fraction!r}")

    def build_head(self, encoder_channels: tuple[int, ...], width_divisor: int) -> nn.Module:
        return CPCHead(encoder_channels[-1], self.grid[0] - self.context_rows, width_divisor)

    def step(self, unet: UNet3D, head: nn.Module, cubes: Tensor, generator: torch.Generator
             ) -> dict[str, Tensor]:
        proxy.check_cubes(cubes)
        patches = proxy.split_grid(cubes, self.grid)
        if any(side % 8 for side in patches.shape[3:]):
            raise ValueError(f"CPC patches of {tuple(patches.shape[3:])} voxels from cubes "
                             f"{tuple(cubes.shape[2:])}: patch sides must be multiples of 8")
        if head.training and self.keep_fraction < 1.0:
            patches = proxy.mask_patch_borders(patches, generator, self.keep_fraction)
        codes = head.codes(encode_patches(unet, patches))              # (B, n_cells, D)
        context_index, target_index = proxy.cpc_layout(self.grid, self.context_rows)
        context = codes[:, context_index.to(codes.device)].flatten(0, 1)    # (B*cols, T, D)
        targets = codes[:, target_index.to(codes.device)].flatten(0, 2)     # (B*cols*R, D)
        predictions = head.predict(context).flatten(0, 1)                   # (B*cols*R, D)
        loss, accuracy = info_nce(predictions, targets)
        return {"loss": loss, "cpc_acc": accuracy}


BASELINE_TASKS: dict[str, BaselineTask] = {
    task.name: task
    for task in (RotationTask(), RelativePatchLocationTask(), JigsawTask(), CPCTask())
}
