"""Resampling native images into the common grid through a grid-world-to-native-world matrix."""

from __future__ import annotations

import numpy as np
import torch

from nir.spatial.geometry import apply_matrix, identity_grid, norm_to_world, sample, voxel_to_norm
from nir.spatial.label_interpolation import sample_labels


def _native_norm_points(grid_shape: tuple[int, int, int], grid_affine: np.ndarray,
                        to_native: np.ndarray, native_shape: tuple[int, int, int],
                        native_affine: np.ndarray, device: str) -> torch.Tensor:
    """Normalised native coords of every grid voxel centre, shape (*grid_shape, 3)."""
    m = (voxel_to_norm(native_shape) @ np.linalg.inv(native_affine) @ to_native
         @ norm_to_world(grid_shape, grid_affine))
    grid = identity_grid(grid_shape, device=device, dtype=torch.float64)
    return apply_matrix(torch.as_tensor(m, device=device), grid).to(torch.float32)


def resample_image(image: np.ndarray, image_affine: np.ndarray, to_native: np.ndarray,
                   grid_shape: tuple[int, int, int], grid_affine: np.ndarray,
                   device: str = "cpu") -> np.ndarray:
    """Trilinear resampling of ``image`` onto the grid (zero outside the image)."""
    pts = _native_norm_points(grid_shape, grid_affine, to_native, image.shape, image_affine,
                              device)
    vol = torch.as_tensor(image, dtype=torch.float32, device=device)[None]
    return sample(vol, pts)[0].cpu().numpy()


def resample_labels(labels: np.ndarray, labels_affine: np.ndarray, to_native: np.ndarray,
                    grid_shape: tuple[int, int, int], grid_affine: np.ndarray,
                    device: str = "cpu") -> np.ndarray:
    """Label-safe resampling: each output voxel takes the label with the largest summed trilinear
    weight over its 8 neighbours (equal to argmax of trilinearly interpolated one-hot maps)."""
    pts = _native_norm_points(grid_shape, grid_affine, to_native, labels.shape, labels_affine,
                              device)
    lab = torch.as_tensor(np.ascontiguousarray(labels, dtype=np.int32), device=device)
    return sample_labels(lab, pts).cpu().numpy()
