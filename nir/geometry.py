"""One place for coordinate conversions: voxel (i, j, k), normalised [-1, 1] and world RAS mm.

Internally every point is a normalised coordinate of a grid, in nibabel (i, j, k) order, with -1
and +1 at the centres of the first and last voxel (``align_corners=True``).  torch's
``grid_sample`` wants (k, j, i); :func:`sample` is the only place that flips the order.
"""

from __future__ import annotations

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


def sample(volume: torch.Tensor, points: torch.Tensor, mode: str = "bilinear",
           padding_mode: str = "zeros") -> torch.Tensor:
    """Sample ``volume`` (C, I, J, K) at normalised (i, j, k) ``points`` (..., 3) -> (C, ...).

    ``mode='bilinear'`` is trilinear interpolation for 3D volumes.
    """
    lead = points.shape[:-1]
    grid = points.reshape(1, -1, 1, 1, 3).flip(-1).to(volume.dtype)
    out = F.grid_sample(volume.unsqueeze(0), grid, mode=mode, padding_mode=padding_mode,
                        align_corners=True)
    return out.reshape(volume.shape[0], *lead)
