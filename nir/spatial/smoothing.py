"""Separable Gaussian blur of 3D volumes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Normalised 1D Gaussian with standard deviation ``sigma`` (voxels)."""
    radius = max(1, int(truncate * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(volume: torch.Tensor, sigma: float | Sequence[float]) -> torch.Tensor:
    """Blur a (I, J, K) or (C, I, J, K) volume with a Gaussian of ``sigma`` voxels: one value
    for every axis or one per axis (an axis with sigma <= 0 is left alone)."""
    sigmas = [float(sigma)] * 3 if isinstance(sigma, (int, float)) else [float(s) for s in sigma]
    if all(s <= 0 for s in sigmas):
        return volume
    squeeze = volume.dim() == 3
    out = (volume.unsqueeze(0) if squeeze else volume).unsqueeze(1)  # (C, 1, I, J, K)
    for axis, s in enumerate(sigmas):
        if s <= 0:
            continue
        k = gaussian_kernel(s).to(out.device, out.dtype)
        r = k.numel() // 2
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[4 - 2 * axis] = pad[5 - 2 * axis] = r
        out = F.conv3d(F.pad(out, pad, mode="replicate"), k.view(shape))
    out = out.squeeze(1)
    return out.squeeze(0) if squeeze else out
