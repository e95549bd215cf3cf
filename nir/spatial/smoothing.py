"""Separable Gaussian blur of 3D volumes."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def gaussian_kernel(sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Normalised 1D Gaussian with standard deviation ``sigma`` (voxels)."""
    radius = max(1, int(truncate * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(volume: torch.Tensor, sigma: float | Sequence[float]) -> torch.Tensor:
    """Blur a (I, J, K) or (C, I, J, K) volume with a Gaussian of ``sigma`` voxels: one value
    for every axis or one per axis (an axis with sigma <= 0 is left alone).  Borders replicate.

    Each axis is a weighted sum of shifted views, which on the CPU is several times faster
    than a 3D convolution with a one-dimensional kernel.
    """
    sigmas = [float(sigma)] * 3 if isinstance(sigma, (int, float)) else [float(s) for s in sigma]
    if all(s <= 0 for s in sigmas):
        return volume
    squeeze = volume.dim() == 3
    out = volume.unsqueeze(0) if squeeze else volume  # (C, I, J, K)
    for axis, s in enumerate(sigmas):
        if s <= 0:
            continue
        dim = axis + 1
        k = gaussian_kernel(s).tolist()
        r = len(k) // 2
        n = out.shape[dim]
        edge = list(out.shape)
        edge[dim] = r
        padded = torch.cat([out.narrow(dim, 0, 1).expand(edge), out,
                            out.narrow(dim, n - 1, 1).expand(edge)], dim)
        blurred = padded.narrow(dim, 0, n) * k[0]
        for i in range(1, len(k)):
            blurred.add_(padded.narrow(dim, i, n), alpha=k[i])
        out = blurred
    return out.squeeze(0) if squeeze else out
