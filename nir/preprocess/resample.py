"""Resampling native images into the common grid through a grid-world-to-native-world matrix."""

from __future__ import annotations

import numpy as np
import torch

from nir.geometry import apply_matrix, identity_grid, norm_to_world, sample, voxel_to_norm

CHUNK = 1_000_000


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
    lab = torch.as_tensor(labels, dtype=torch.int64, device=device)
    chunks = [_vote(lab, chunk) for chunk in pts.reshape(-1, 3).split(CHUNK)]
    return torch.cat(chunks).reshape(grid_shape).cpu().numpy()


def _vote(lab: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Label with the largest summed trilinear weight among the 8 neighbours of each point."""
    size = torch.tensor(lab.shape, device=lab.device)
    strides = torch.tensor([lab.shape[1] * lab.shape[2], lab.shape[2], 1], device=lab.device)
    flat = lab.reshape(-1)
    vox = (pts + 1) * (size - 1) / 2
    base = torch.floor(vox)
    frac = vox - base
    base = base.long()
    corner_labels, corner_weights = [], []
    for corner in range(8):
        offset = torch.tensor([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1],
                              device=lab.device)
        idx = base + offset
        inside = ((idx >= 0) & (idx < size)).all(dim=1)
        clamped = torch.minimum(idx.clamp(min=0), size - 1)
        value = flat[(clamped * strides).sum(dim=1)]
        corner_labels.append(torch.where(inside, value, torch.zeros_like(value)))
        corner_weights.append(torch.prod(torch.where(offset.bool(), frac, 1 - frac), dim=1))
    labels = torch.stack(corner_labels, dim=1)
    weights = torch.stack(corner_weights, dim=1)
    result = labels[:, 0].clone()
    mixed = (labels != labels[:, :1]).any(dim=1)
    sub_labels, sub_weights = labels[mixed], weights[mixed]
    same = sub_labels[:, :, None] == sub_labels[:, None, :]
    score = (same * sub_weights[:, None, :]).sum(dim=2)
    result[mixed] = sub_labels.gather(1, score.argmax(dim=1, keepdim=True))[:, 0]
    return result
