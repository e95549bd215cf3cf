"""Resampling a moving image or label map through a world-mm displacement field."""

from __future__ import annotations

import numpy as np
import torch

from nir.geometry import apply_matrix, sample, voxel_indices, voxel_to_norm
from nir.label_interpolation import sample_labels


def moving_coordinates(displacement_ras: torch.Tensor, grid_affine: np.ndarray,
                       moving_shape: tuple[int, int, int],
                       moving_affine: np.ndarray) -> torch.Tensor:
    """Normalised moving-grid coords of x + d(x) for every voxel x of the displacement grid."""
    d = displacement_ras.float()
    world = apply_matrix(grid_affine, voxel_indices(d.shape[:3], d.device, d.dtype)) + d
    to_norm = voxel_to_norm(moving_shape) @ np.linalg.inv(moving_affine)
    return apply_matrix(to_norm, world)


def warp_image(moving: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Trilinear resampling of a (I, J, K) image at normalised ``coords``; zero outside."""
    return sample(moving.float()[None], coords)[0]


def warp_labels(labels: torch.Tensor, coords: torch.Tensor, method: str = "onehot") -> torch.Tensor:
    """Resample an integer label map at normalised ``coords`` without eroding thin structures.

    ``onehot``: the label with the largest summed trilinear weight among the 8 neighbours
    (:mod:`nir.label_interpolation`, like ANTs' GenericLabel).  ``nearest``: nearest neighbour.
    """
    if method == "nearest":
        return sample(labels.float()[None], coords, mode="nearest")[0].round().to(labels.dtype)
    return sample_labels(labels, coords).to(labels.dtype)
