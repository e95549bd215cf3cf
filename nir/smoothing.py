"""Separable Gaussian blur of 3D volumes."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Normalised 1D Gaussian with standard deviation ``sigma`` (voxels)."""
    radius = max(1, int(truncate * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(volume: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur a (I, J, K) or (C, I, J, K) volume with an isotropic Gaussian of ``sigma`` voxels."""
    if sigma <= 0:
        return volume
    squeeze = volume.dim() == 3
    v = volume.unsqueeze(0) if squeeze else volume
    k = gaussian_kernel(sigma).to(v.device, v.dtype)
    r = k.numel() // 2
    out = v.unsqueeze(1)  # (C, 1, I, J, K)
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[4 - 2 * axis] = pad[5 - 2 * axis] = r
        out = F.conv3d(F.pad(out, pad, mode="replicate"), k.view(shape))
    out = out.squeeze(1)
    return out.squeeze(0) if squeeze else out
