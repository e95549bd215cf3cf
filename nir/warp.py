"""Resampling a moving image or label map through a world-mm displacement field."""

from __future__ import annotations

import numpy as np
import torch

from nir.geometry import apply_matrix, sample, voxel_to_norm


def moving_coordinates(displacement_ras: torch.Tensor, grid_affine: np.ndarray,
                       moving_shape: tuple[int, int, int],
                       moving_affine: np.ndarray) -> torch.Tensor:
    """Normalised moving-grid coords of x + d(x) for every voxel x of the displacement grid."""
    d = displacement_ras.float()
    idx = torch.stack(torch.meshgrid(*[torch.arange(n, device=d.device, dtype=d.dtype)
                                       for n in d.shape[:3]], indexing="ij"), dim=-1)
    world = apply_matrix(grid_affine, idx) + d
    to_norm = voxel_to_norm(moving_shape) @ np.linalg.inv(moving_affine)
    return apply_matrix(to_norm, world)


def warp_image(moving: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Trilinear resampling of a (I, J, K) image at normalised ``coords``; zero outside."""
    return sample(moving.float()[None], coords)[0]


def warp_labels(labels: torch.Tensor, coords: torch.Tensor, method: str = "onehot") -> torch.Tensor:
    """Resample an integer label map at normalised ``coords`` without eroding thin structures.

    ``onehot``: each label's indicator is interpolated trilinearly and every voxel takes the
    label with the largest weight (like ANTs' GenericLabel); memory stays at two output-sized
    buffers whatever the number of labels.  ``nearest``: nearest-neighbour lookup.
    """
    if method == "nearest":
        return sample(labels.float()[None], coords, mode="nearest")[0].round().to(labels.dtype)
    best = torch.full(coords.shape[:3], -1.0, device=coords.device)
    out = torch.zeros(coords.shape[:3], dtype=labels.dtype, device=coords.device)
    for value in torch.unique(labels).tolist():
        weight = sample((labels == value).float()[None], coords)[0]
        better = weight > best
        best = torch.where(better, weight, best)
        out = torch.where(better, torch.as_tensor(value, dtype=labels.dtype), out)
    return out
