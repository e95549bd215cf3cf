"""One place for coordinate conversions: voxel (i, j, k), normalised [-1, 1] and world RAS mm.

Internally every point is a normalised coordinate of a grid, in nibabel (i, j, k) order, with -1
and +1 at the centres of the first and last voxel (``align_corners=True``).  torch's
``grid_sample`` wants (k, j, i); :func:`sample` is the only place that flips the order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def voxel_to_norm(shape: tuple[int, int, int]) -> np.ndarray:
    """4x4 matrix mapping voxel indices (i, j, k) of a grid of ``shape`` to normalised coords."""
    m = np.eye(4)
    for a, n in enumerate(shape):
        m[a, a] = 2.0 / max(n - 1, 1)
        m[a, 3] = -1.0
    return m


def norm_to_voxel(shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`voxel_to_norm`."""
    return np.linalg.inv(voxel_to_norm(shape))


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel size in mm along i, j, k of a voxel-to-world ``affine``."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def norm_to_world(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """4x4 matrix mapping normalised coords of a grid to world RAS mm."""
    return affine @ norm_to_voxel(shape)


def fixed_to_moving_norm(fixed_shape: tuple[int, int, int], fixed_affine: np.ndarray,
                         moving_shape: tuple[int, int, int],
                         moving_affine: np.ndarray) -> np.ndarray:
    """4x4 matrix taking normalised fixed coords to normalised moving coords via world space."""
    world_to_moving_norm = voxel_to_norm(moving_shape) @ np.linalg.inv(moving_affine)
    return world_to_moving_norm @ norm_to_world(fixed_shape, fixed_affine)


def apply_matrix(matrix: np.ndarray | torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply a 4x4 homogeneous matrix to points of shape (..., 3)."""
    m = torch.as_tensor(matrix, dtype=points.dtype, device=points.device)
    return points @ m[:3, :3].T + m[:3, 3]


SLAB_VOXELS = 1 << 18  # voxels per slab in :func:`slabs`


def slabs(shape: Sequence[int]) -> list[slice]:
    """Consecutive ranges of first-axis planes covering ``shape``, about SLAB_VOXELS voxels each.

    Whole-volume arithmetic done slab by slab keeps every temporary small: cache-sized, and
    reused by the allocator instead of fresh (page-faulting) memory for each operation.
    """
    step = max(1, SLAB_VOXELS // max(1, math.prod(shape[1:])))
    return [slice(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]


def combine(terms: Sequence[torch.Tensor], weights: Sequence[float],
            offset: float = 0.0) -> torch.Tensor:
    """``sum_a weights[a] * terms[a] + offset``: one row of a matrix product plus translation.

    Terms are summed left to right and the offset added last, like ``points @ m.T + t``; zero
    weights are skipped and unit weights multiply nothing, so an axis-aligned matrix costs
    little arithmetic.  Skipping changes no bit of a finite result (the skipped product is an
    exact zero).  ``weights`` should already be rounded to the terms' dtype.
    """
    total: torch.Tensor | None = None
    for term, weight in zip(terms, weights, strict=True):
        if weight == 0:
            continue
        scaled = term if weight == 1 else term * weight
        total = scaled if total is None else total + scaled
    return torch.zeros_like(terms[0]) + offset if total is None else total + offset


def voxel_indices(shape: tuple[int, ...], device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Voxel (i, j, k) index of every voxel centre, shape (*shape, 3)."""
    axes = [torch.arange(n, device=device, dtype=dtype) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def identity_grid(shape: tuple[int, int, int], device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised coords of every voxel centre, shape (*shape, 3)."""
    axes = [torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype) if n > 1
            else torch.zeros(1, device=device, dtype=dtype) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


PARALLEL_MIN_POINTS = 1 << 16  # fewer points than this are sampled in one piece
KJI_ROWS = [2, 1, 0, 3]  # row order that turns a matrix's (i, j, k) output into torch's (k, j, i)


def nodes_spanning(low: np.ndarray, high: np.ndarray, spacing: float) -> tuple[int, ...]:
    """Node count per axis of a grid ``spacing`` apart from ``low`` that reaches ``high``
    (at least 2 per axis)."""
    return tuple(max(2, math.ceil((h - lo) / spacing - 1e-9) + 1)
                 for lo, h in zip(np.asarray(low, dtype=np.float64),
                                  np.asarray(high, dtype=np.float64), strict=True))


def transform_points(points: torch.Tensor, matrix: torch.Tensor,
                     shift: torch.Tensor | None = None) -> torch.Tensor:
    """``points @ matrix.T + shift`` for points (..., 3) and a 3x3 ``matrix``, as three
    broadcast multiply-adds: much faster on the CPU than a matrix product with 3 columns."""
    out = points[..., 0:1] * matrix[:, 0]
    out = out.addcmul_(points[..., 1:2], matrix[:, 1]).addcmul_(points[..., 2:3], matrix[:, 2])
    return out if shift is None else out.add_(shift)


def sample(volume: torch.Tensor, points: torch.Tensor, mode: str = "bilinear",
           padding_mode: str = "zeros", matrix: np.ndarray | torch.Tensor | None = None
           ) -> torch.Tensor:
    """Sample ``volume`` (C, I, J, K) at normalised (i, j, k) ``points`` (..., 3) -> (C, ...).

    With ``matrix`` (4x4), ``points`` are first mapped through it (e.g. field -> normalised
    coordinates) in the same product that reorders them for torch.  ``mode='bilinear'`` is
    trilinear interpolation for 3D volumes.
    """
    if matrix is None:
        grid = points.flip(-1)
    else:
        m = torch.as_tensor(matrix, dtype=points.dtype, device=points.device)[KJI_ROWS]
        grid = transform_points(points, m[:3, :3], m[:3, 3])
    return sample_kji(volume, grid, mode, padding_mode)


def sample_kji(volume: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear",
               padding_mode: str = "zeros") -> torch.Tensor:
    """Like :func:`sample`, with normalised points already in torch's (k, j, i) order.

    torch's 3D CPU kernel runs one thread per batch item, so on the CPU the points are split
    into one batch item per thread.
    """
    lead = grid.shape[:-1]
    flat = grid.reshape(-1, 3).to(volume.dtype)
    parts = torch.get_num_threads() if volume.device.type == "cpu" else 1
    count = flat.shape[0]
    if parts > 1 and count >= PARALLEL_MIN_POINTS:
        per = -(-count // parts)
        flat = F.pad(flat, (0, 0, 0, per * parts - count)) if per * parts != count else flat
        batch = volume.unsqueeze(0).expand(parts, *volume.shape)
        out = F.grid_sample(batch, flat.view(parts, per, 1, 1, 3), mode=mode,
                            padding_mode=padding_mode, align_corners=True)
        out = out.movedim(1, 0).reshape(volume.shape[0], -1)[:, :count]
    else:
        out = F.grid_sample(volume.unsqueeze(0), flat.view(1, -1, 1, 1, 3), mode=mode,
                            padding_mode=padding_mode, align_corners=True)
    return out.reshape(volume.shape[0], *lead)
