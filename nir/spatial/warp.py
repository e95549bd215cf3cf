"""Resampling a moving image or label map through a world-mm displacement field."""

from __future__ import annotations

import numpy as np
import torch

from nir.spatial.geometry import combine, sample, slabs, voxel_to_norm
from nir.spatial.label_interpolation import sample_labels


def moving_coordinates(displacement_ras: torch.Tensor, grid_affine: np.ndarray,
                       moving_shape: tuple[int, int, int],
                       moving_affine: np.ndarray) -> torch.Tensor:
    """Normalised moving-grid coords of x + d(x) for every voxel x of the displacement grid.

    Slab by slab (:func:`nir.spatial.geometry.slabs`): the world point A x + t of voxel (i, j, k) is
    built per coordinate from per-axis vectors, ``((A_c0 i + A_c1 j) + A_c2 k) + t_c`` (the
    matrix product's order), plus d(x), then mapped to the moving grid one coordinate at a time
    (:func:`nir.spatial.geometry.combine`); no voxel-index grid or 3x3 product per voxel.
    Returns (I, J, K, 3).
    """
    d = displacement_ras.float()
    to_world = torch.as_tensor(grid_affine, dtype=d.dtype).tolist()[:3]
    to_norm = voxel_to_norm(moving_shape) @ np.linalg.inv(moving_affine)
    rows = torch.as_tensor(to_norm, dtype=d.dtype).tolist()[:3]
    i, j, k = (torch.arange(n, device=d.device, dtype=d.dtype) for n in d.shape[:3])
    jk_terms = [((j * row[1])[:, None], k * row[2]) for row in to_world]
    coords = torch.empty_like(d)
    for slab in slabs(d.shape[:3]):
        world = [(i[slab, None, None] * row[0] + j_term + k_term + row[3]) + d[slab, ..., c]
                 for c, (row, (j_term, k_term)) in enumerate(zip(to_world, jk_terms, strict=True))]
        coords[slab] = torch.stack([combine(world, row[:3], row[3]) for row in rows], dim=-1)
    return coords


def warp_image(moving: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Trilinear resampling of a (I, J, K) image at normalised ``coords``; zero outside."""
    return sample(moving.float()[None], coords)[0]


def warp_labels(labels: torch.Tensor, coords: torch.Tensor, method: str = "onehot") -> torch.Tensor:
    """Resample an integer label map at normalised ``coords`` without eroding thin structures.

    ``onehot``: the label with the largest summed trilinear weight among the 8 neighbours
    (:mod:`nir.spatial.label_interpolation`, like ANTs' GenericLabel).
    ``nearest``: nearest neighbour.
    """
    if method == "nearest":
        return sample(labels.float()[None], coords, mode="nearest")[0].round().to(labels.dtype)
    return sample_labels(labels, coords).to(labels.dtype)
