"""Coordinate encodings: Gaussian random Fourier features (Tancik et al. 2020) and learnable
multi-resolution feature grids (as in Instant-NGP, without hashing)."""

from __future__ import annotations

import math

import torch
from torch import nn

from nir.geometry import sample


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


class GridFeatures(nn.Module):
    """Learnable feature grids over the cube [-1, 1]^3 of the field frame, read trilinearly.

    Each level is a grid of ``n_features`` channels with nodes ``spacing`` field units apart;
    the encoding concatenates the levels.  Unlike Fourier features it has local capacity: a
    fine level can bend the field in one gyrus without touching the next.

    Args:
        spacings: node spacing of each level, in field units.
        n_features: channels per level.
        generator: seeded generator for the small uniform initial values.
    """

    def __init__(self, spacings: tuple[float, ...], n_features: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.grids = nn.ParameterList()
        for spacing in spacings:
            n = max(2, round(2.0 / spacing) + 1)
            init = (torch.rand(n_features, n, n, n, generator=generator) - 0.5) * 2e-4
            self.grids.append(nn.Parameter(init))
        self.out_features = n_features * len(spacings)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode points (..., 3) into (..., levels x n_features)."""
        return torch.cat([sample(g, x, padding_mode="border").movedim(0, -1)
                          for g in self.grids], dim=-1)
