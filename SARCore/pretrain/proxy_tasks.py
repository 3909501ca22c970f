"""Batch builders of the 3D proxy tasks of Taleb et al. 2020 (rotation, RPL, jigsaw, CPC).

Every random choice is drawn from the caller's ``torch.Generator`` (on its own device,
then moved to the cubes' device), so a seeded generator replays a batch exactly. The
deterministic parts (``rotate``, ``crop_boxes``, ``PatchGrid.extract`` without a
generator, ``split_grid``) are separate functions that tests and previews can call.
Everything is batched in torch: the only Python loops run over the 10 rotation classes
or over index tables, never over voxels.

Conventions: cubes are ``(B, 1, X, Y, Z)`` in ``[x, y, z]`` order; grid cells are numbered
in raster order ``cell = (i * ny + j) * nz + k`` with ``i`` along x and ``k`` along z.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from SARCore.errors import ConfigError

#: Rotation classes as (quarter turns, plane dims of a (B, C, X, Y, Z) tensor).
ROTATIONS: tuple[tuple[int, tuple[int, int]], ...] = (
    (0, (2, 3)),                                # 0: identity
    (1, (2, 3)), (2, (2, 3)), (3, (2, 3)),      # 1-3: 90/180/270 degrees in the x-y plane
    (1, (3, 4)), (2, (3, 4)), (3, (3, 4)),      # 4-6: in the y-z plane
    (1, (2, 4)), (2, (2, 4)), (3, (2, 4)),      # 7-9: in the x-z plane
)
N_ROTATIONS = len(ROTATIONS)


def check_cubes(cubes: torch.Tensor, min_batch: int = 1) -> None:
    """Raise ``ValueError`` unless ``cubes`` is a float ``(B, 1, X, Y, Z)`` batch."""
    if not isinstance(cubes, torch.Tensor):
        raise ValueError(f"cubes must be a torch.Tensor, not {type(cubes).__name__}")
    if cubes.ndim != 5 or cubes.shape[1] != 1:
        raise ValueError(f"cubes must have shape (B, 1, X, Y, Z), got {tuple(cubes.shape)}")
    if not cubes.is_floating_point():
        raise ValueError(f"cubes must be floating point, got {cubes.dtype}")
    if cubes.shape[0] < min_batch:
        raise ValueError(f"a batch of at least {min_batch} cubes is needed (batch-norm "
                         f"statistics in training), got {cubes.shape[0]}")


def _check_size(value: object, name: str, length: int = 3) -> tuple[int, ...]:
    if (not isinstance(value, tuple) or len(value) != length
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"{name} must be a tuple of {length} integers, not {value!r}")
    return value


def _uniform_below(high: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Integers uniform in ``[0, high)`` elementwise (``high >= 1``), on ``high``'s device."""
    u = torch.rand(high.shape, generator=generator, device=generator.device).to(high.device)
    return torch.minimum((u * high).long(), high - 1)


def random_labels(n: int, n_classes: int, generator: torch.Generator,
                  device: torch.device) -> torch.Tensor:
    """``n`` class labels uniform in ``[0, n_classes)`` drawn from ``generator``."""
    labels = torch.randint(0, n_classes, (n,), generator=generator, device=generator.device)
    return labels.to(device)


def crop_boxes(volumes: torch.Tensor, starts: torch.Tensor, size: tuple[int, int, int]
               ) -> torch.Tensor:
    """``(B, C, X, Y, Z)`` and corners ``(B, K, 3)`` -> ``(B, K, C, *size)`` crops (one gather)."""
    batch, device = volumes.shape[0], volumes.device
    axes = [starts[..., d, None] + torch.arange(size[d], device=device) for d in range(3)]
    b = torch.arange(batch, device=device)[:, None, None, None, None]
    x = axes[0][:, :, :, None, None]
    y = axes[1][:, :, None, :, None]
    z = axes[2][:, :, None, None, :]
    crops = volumes.permute(0, 2, 3, 4, 1)[b, x, y, z]      # (B, K, sx, sy, sz, C)
    return crops.permute(0, 1, 5, 2, 3, 4).contiguous()


def rotate(volumes: torch.Tensor, labels: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Rotate sample ``b`` by rotation class ``labels[b]`` (see ``ROTATIONS``); sides must match."""
    out = volumes.clone()
    for index, (turns, dims) in enumerate(ROTATIONS[1:], start=1):
        chosen = (labels == index).nonzero(as_tuple=True)[0]
        if chosen.numel() and turns % 2 and volumes.shape[dims[0]] != volumes.shape[dims[1]]:
            raise ValueError(f"rotation class {index} turns a {tuple(volumes.shape[2:])} volume "
                             f"by 90 degrees in a plane with unequal sides")
        if chosen.numel():
            out[chosen] = torch.rot90(volumes[chosen], -turns if inverse else turns, dims)
    return out


def sample_rotation_batch(cubes: torch.Tensor, generator: torch.Generator,
                          size: tuple[int, int, int] = (32, 32, 32), random_position: bool = True,
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """A cubic crop of every cube, rotated by a random class: ``(B, 1, *size)``, labels ``(B,)``.

    A 64x64x32 cube cannot be turned in a plane containing z without changing shape, so
    every class works on a cubic crop (random position when training, else centred); the
    identity class then has the same input size as the others and nothing is interpolated.
    """
    check_cubes(cubes)
    if any(c < s for c, s in zip(cubes.shape[2:], size)):
        raise ValueError(f"cubes {tuple(cubes.shape[2:])} are smaller than the rotation crop {size}")
    batch, device = cubes.shape[0], cubes.device
    slack = torch.tensor([c - s + 1 for c, s in zip(cubes.shape[2:], size)], device=device)
    if random_position:
        starts = _uniform_below(slack.expand(batch, 1, 3).contiguous(), generator)
    else:
        starts = ((slack - 1) // 2).expand(batch, 1, 3)
    crops = crop_boxes(cubes, starts, size)[:, 0]
    labels = random_labels(batch, N_ROTATIONS, generator, device)
    return rotate(crops, labels), labels


@dataclass(frozen=True)
class PatchGrid:
    """Cells of a grid laid on the cube; a patch is a cell minus ``jitter`` voxels per axis.

    The crop (smallest cell side minus ``jitter``) sits at a random place inside its cell
    when a generator is given, else centred; it is then resized (trilinear) to
    ``patch_size`` unless it already has that size. Cells are split at ``floor(i*L/n)``,
    so for 64x64x32 and 3x3x3 cells of 21-22 x 21-22 x 10-11 voxels with ``jitter=3``
    the crops are 18x18x7, resized to 16x16x8 (a multiple of 8, as the encoder needs).
    """

    cells: tuple[int, int, int] = (3, 3, 3)
    jitter: tuple[int, int, int] = (3, 3, 3)
    patch_size: tuple[int, int, int] = (16, 16, 8)

    def __post_init__(self) -> None:
        for name in ("cells", "jitter", "patch_size"):
            _check_size(getattr(self, name), name)
        if min(self.cells) < 1 or min(self.jitter) < 0:
            raise ConfigError(f"cells must be >= 1 and jitter >= 0, got {self.cells}, {self.jitter}")
        if any(side < 8 or side % 8 for side in self.patch_size):
            raise ConfigError(f"patch_size sides must be positive multiples of 8 (encoder input), "
                              f"not {self.patch_size}")

    @property
    def n_cells(self) -> int:
        return self.cells[0] * self.cells[1] * self.cells[2]

    @property
    def center(self) -> int:
        """Index of the central cell (13 for 3x3x3)."""
        return self.n_cells // 2

    def edges(self, shape: tuple[int, ...]) -> list[list[int]]:
        """Cell boundaries per axis for a cube of spatial ``shape``."""
        return [[i * side // n for i in range(n + 1)] for side, n in zip(shape, self.cells)]

    def crop_size(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        """Side of the crop taken from each cell; ``ValueError`` if the cube is too small."""
        sizes = tuple(min(b - a for a, b in zip(e, e[1:])) - j
                      for e, j in zip(self.edges(shape), self.jitter))
        if min(sizes) < 1:
            raise ValueError(f"cubes {tuple(shape)} are too small for {self.cells} cells "
                             f"with jitter {self.jitter}")
        return sizes  # type: ignore[return-value]

    def cell_coordinates(self, cells: torch.Tensor) -> torch.Tensor:
        """Cell indices ``(...)`` -> grid coordinates ``(..., 3)`` (i along x, k along z)."""
        _, ny, nz = self.cells
        return torch.stack([cells // (ny * nz), (cells // nz) % ny, cells % nz], dim=-1)

    def extract(self, cubes: torch.Tensor, cells: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Patches of cells ``(B, K)`` -> ``(B, K, 1, *patch_size)``; random crops if a generator."""
        check_cubes(cubes)
        shape = tuple(cubes.shape[2:])
        crop = self.crop_size(shape)
        edges = [torch.tensor(e, device=cubes.device) for e in self.edges(shape)]
        coords = self.cell_coordinates(cells.to(cubes.device))
        low = torch.stack([edges[d][coords[..., d]] for d in range(3)], dim=-1)
        high = torch.stack([edges[d][coords[..., d] + 1] for d in range(3)], dim=-1)
        slack = high - low - torch.tensor(crop, device=cubes.device) + 1
        offsets = _uniform_below(slack, generator) if generator is not None else (slack - 1) // 2
        patches = crop_boxes(cubes, low + offsets, crop)
        if crop != self.patch_size:
            flat = F.interpolate(patches.flatten(0, 1), size=self.patch_size, mode="trilinear",
                                 align_corners=False)
            patches = flat.view(*patches.shape[:3], *self.patch_size)
        return patches


def rpl_label_to_cell(labels: torch.Tensor, grid: PatchGrid) -> torch.Tensor:
    """RPL class (0..n_cells-2) -> cell index, skipping the centre cell."""
    return labels + (labels >= grid.center).long()


def sample_rpl_batch(cubes: torch.Tensor, generator: torch.Generator, grid: PatchGrid,
                     random_crops: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre patch and one random other: ``(B, 2, 1, *patch_size)``, labels ``(B,)`` in 0..25."""
    check_cubes(cubes)
    labels = random_labels(cubes.shape[0], grid.n_cells - 1, generator, cubes.device)
    center = torch.full_like(labels, grid.center)
    cells = torch.stack([center, rpl_label_to_cell(labels, grid)], dim=1)
    return grid.extract(cubes, cells, generator if random_crops else None), labels


def sample_jigsaw_batch(cubes: torch.Tensor, generator: torch.Generator, grid: PatchGrid,
                        permutations: torch.Tensor, random_crops: bool = True,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """All cells shuffled by a random permutation of the set: ``(B, n_cells, 1, *p)``, labels.

    Position ``i`` of sample ``b`` holds cell ``permutations[labels[b], i]``.
    """
    check_cubes(cubes)
    if permutations.ndim != 2 or permutations.shape[1] != grid.n_cells:
        raise ValueError(f"permutations must be (N, {grid.n_cells}), got {tuple(permutations.shape)}")
    labels = random_labels(cubes.shape[0], permutations.shape[0], generator, cubes.device)
    cells = permutations.to(cubes.device)[labels]
    return grid.extract(cubes, cells, generator if random_crops else None), labels


def split_grid(cubes: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """``(B, C, X, Y, Z)`` -> non-overlapping patches ``(B, gx*gy*gz, C, X/gx, Y/gy, Z/gz)``."""
    batch, channels, *shape = cubes.shape
    if any(side % n for side, n in zip(shape, grid)):
        raise ValueError(f"cube sides {tuple(shape)} do not split into a {grid} grid")
    (gx, gy, gz), (px, py, pz) = grid, [side // n for side, n in zip(shape, grid)]
    patches = cubes.reshape(batch, channels, gx, px, gy, py, gz, pz)
    patches = patches.permute(0, 2, 4, 6, 1, 3, 5, 7)
    return patches.reshape(batch, gx * gy * gz, channels, px, py, pz)


def mask_patch_borders(patches: torch.Tensor, generator: torch.Generator,
                       keep: float = 7 / 8) -> torch.Tensor:
    """Zero all but a random ``keep``-sized window of each patch ``(B, K, C, px, py, pz)``.

    Adjacent grid patches share a face; without this a predictor can match border voxels
    instead of learning content (Taleb crop 7/8 of each CPC patch and pad it back).
    """
    sides = patches.shape[3:]
    kept = [max(1, round(side * keep)) for side in sides]
    mask = torch.ones((), device=patches.device)
    for axis, (side, length) in enumerate(zip(sides, kept)):
        slack = torch.full(patches.shape[:2], side - length + 1, device=patches.device)
        start = _uniform_below(slack, generator)[..., None]
        ramp = torch.arange(side, device=patches.device)
        inside = ((ramp >= start) & (ramp < start + length)).to(patches.dtype)
        view = [*patches.shape[:2], 1, 1, 1, 1]
        view[3 + axis] = side
        mask = mask * inside.view(view)
    return patches * mask


def cpc_layout(grid: tuple[int, int, int] = (4, 4, 4), context_rows: int = 2
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Context and target cell indices of the CPC task, one row per column ``(j, k)``.

    Rows run along x. Column ``(j, k)`` is predicted from a pyramid of context cells: the
    cell itself in the last context row, widening by one cell each way per row above it
    (3x3 in the row before, mirrored at the borders), read top row first; its targets are
    the cells ``(i, j, k)`` of the rows ``i >= context_rows`` (Taleb's 3D layout).
    Returns ``(n_columns, n_context)`` and ``(n_columns, n_targets)`` int64 tensors.
    """
    context, targets = _cpc_layout(tuple(grid), context_rows)
    return torch.tensor(context), torch.tensor(targets)


@functools.lru_cache(maxsize=8)
def _cpc_layout(grid: tuple[int, ...], context_rows: int
                ) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    gx, gy, gz = _check_size(grid, "grid")
    if not 1 <= context_rows < gx or context_rows > min(gy, gz):
        raise ConfigError(f"context_rows must be in 1..{min(gx - 1, gy, gz)} for a {grid} "
                          f"grid, not {context_rows}")

    def mirror(value: int, n: int) -> int:
        value = -value if value < 0 else value
        return 2 * (n - 1) - value if value >= n else value

    context, targets = [], []
    for j in range(gy):
        for k in range(gz):
            cells = []
            for i in range(context_rows):
                reach = context_rows - 1 - i
                cells += [(i * gy + mirror(j + dj, gy)) * gz + mirror(k + dk, gz)
                          for dj in range(-reach, reach + 1) for dk in range(-reach, reach + 1)]
            context.append(tuple(cells))
            targets.append(tuple((i * gy + j) * gz + k for i in range(context_rows, gx)))
    return tuple(context), tuple(targets)
