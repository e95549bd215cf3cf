"""Coordinate encodings: Gaussian random Fourier features (Tancik et al. 2020) and learnable
multi-resolution feature grids (as in Instant-NGP, without hashing) on a field's lattice."""

from __future__ import annotations

import math

import torch
from torch import nn

from nir.engine.lattice import Lattice, Region, interpolate_grid


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


GRID_INIT = 1e-4  # initial feature values are uniform in [-GRID_INIT, GRID_INIT]


class GridFeatures(nn.Module):
    """Learnable multi-resolution feature grids aligned with a field's lattice.

    Level k is a grid of ``n_features`` channels whose nodes are ``2**k`` lattice spacings
    apart, starting at the lattice's first node; it is read at every lattice node by separable
    linear interpolation (:func:`~nir.engine.lattice.interpolate_grid`; level 0 is read as
    is).  The encoding concatenates the levels.  Unlike Fourier features it has local
    capacity: a fine level can bend the field in one gyrus without touching the next.

    Args:
        shape: the lattice's node counts.
        levels: number of levels.
        n_features: channels per level.
        generator: seeded generator for the small uniform initial values.
    """

    def __init__(self, shape: tuple[int, int, int], levels: int, n_features: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.grids = nn.ParameterList()
        for level in range(levels):
            factor = 2**level
            size = [max(2, -(-(n - 1) // factor) + 1) for n in shape]
            init = (torch.rand(n_features, *size, generator=generator) - 0.5) * 2 * GRID_INIT
            self.grids.append(nn.Parameter(init))
        self.out_features = n_features * levels

    def forward(self, region: Region | None = None) -> torch.Tensor:
        """The features at the lattice nodes of ``region`` (default: all), (features, *size)."""
        region = region or tuple(slice(0, n) for n in self.shape)
        out = []
        for level, grid in enumerate(self.grids):
            if level == 0:
                out.append(grid[:, region[0], region[1], region[2]])
                continue
            level_lattice = Lattice((0.0, 0.0, 0.0), float(2**level), tuple(grid.shape[1:]))
            weights = [level_lattice.weights(a, torch.arange(r.start, r.stop, device=grid.device,
                                                             dtype=torch.float32))
                       for a, r in enumerate(region)]
            out.append(interpolate_grid(grid, weights))
        return torch.cat(out)
