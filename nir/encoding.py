"""Gaussian random Fourier-feature encoding of 3D coordinates (Tancik et al. 2020)."""

from __future__ import annotations

import math

import torch
from torch import nn


class FourierFeatures(nn.Module):
    """gamma(x) = [sin(2 pi x B), cos(2 pi x B)] with fixed B ~ N(0, sigma^2).

    Args:
        n_features: number of random frequencies m; the output has 2m channels.
        sigma: standard deviation of the frequencies, in cycles per field-frame unit
            (one unit is half the largest extent of the fixed image, in mm).
        generator: seeded generator so the same seed gives the same encoding.
    """

    def __init__(self, n_features: int, sigma: float,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        freqs = torch.randn(3, n_features, generator=generator) * sigma * 2 * math.pi
        self.register_buffer("freqs", freqs)
        self.out_features = 2 * n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode points (..., 3) into (..., 2m)."""
        proj = x @ self.freqs
        return torch.cat([proj.sin(), proj.cos()], dim=-1)
