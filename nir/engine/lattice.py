"""Regular lattices in the field frame, and separable linear interpolation from them.

A neural field is evaluated on the nodes of a lattice (:class:`Lattice`) and read everywhere
else by trilinear interpolation of its node values.  On an axis-aligned grid of points (the
fixed voxel grid, a strided sample grid) trilinear interpolation factorises into one linear
interpolation per axis (:func:`interpolate_grid`): three cheap gather-and-lerp passes instead of
one eight-corner gather per point, with a backward pass of the same cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from nir.spatial.geometry import nodes_spanning

Region = tuple[slice, slice, slice]  # node index ranges of a sub-lattice


@dataclass(frozen=True)
class AxisWeights:
    """Linear interpolation along one axis: lower node ``index``, weight ``frac`` of the upper."""

    index: torch.Tensor  # (L,) int64
    frac: torch.Tensor  # (L,) float


@dataclass(frozen=True)
class Lattice:
    """Nodes ``origin + spacing * (a, b, c)`` for ``0 <= (a, b, c) < shape``, in field units."""

    origin: tuple[float, float, float]
    spacing: float
    shape: tuple[int, int, int]

    @classmethod
    def covering(cls, low: torch.Tensor | np.ndarray, high: torch.Tensor | np.ndarray,
                 spacing: float) -> Lattice:
        """The lattice of ``spacing`` whose nodes span [low, high] plus one node each side."""
        low = np.asarray(low, dtype=np.float64) - spacing
        high = np.asarray(high, dtype=np.float64) + spacing
        return cls(tuple(float(v) for v in low), float(spacing),
                   nodes_spanning(low, high, spacing))  # type: ignore[arg-type]

    def axes(self, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """Node positions along each axis, field units."""
        return [self.origin[a] + self.spacing * torch.arange(n, device=device,
                                                             dtype=torch.float32)
                for a, n in enumerate(self.shape)]

    def nodes(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Every node position, shape (*shape, 3)."""
        return torch.stack(torch.meshgrid(*self.axes(device), indexing="ij"), dim=-1)

    @property
    def norm_from_field(self) -> np.ndarray:
        """4x4 matrix: field coordinates -> the lattice's normalised [-1, 1] coordinates."""
        m = np.eye(4)
        for a, n in enumerate(self.shape):
            m[a, a] = 2.0 / (self.spacing * (n - 1))
            m[a, 3] = -1.0 - self.origin[a] * m[a, a]
        return m

    def crop(self, region: Region) -> Lattice:
        """The sub-lattice of the nodes in ``region`` (one slice of node indices per axis)."""
        origin = tuple(o + self.spacing * r.start for o, r in zip(self.origin, region,
                                                                    strict=True))
        return Lattice(origin, self.spacing, tuple(r.stop - r.start for r in region))

    def region(self, low: torch.Tensor, high: torch.Tensor, margin: int) -> Region:
        """The node slices whose nodes span the field box [low, high] plus ``margin`` nodes."""
        out = []
        for a, n in enumerate(self.shape):
            first = math.floor((float(low[a]) - self.origin[a]) / self.spacing) - margin
            last = math.ceil((float(high[a]) - self.origin[a]) / self.spacing) + margin
            first, last = max(0, first), min(n - 1, last)
            first = min(first, last - 1)
            out.append(slice(first, last + 1))
        return tuple(out)  # type: ignore[return-value]

    def weights(self, axis: int, positions: torch.Tensor) -> AxisWeights:
        """Interpolation weights at field-unit ``positions`` along ``axis`` (border-clamped)."""
        n = self.shape[axis]
        t = ((positions - self.origin[axis]) / self.spacing).clamp(0, n - 1)
        index = t.floor().clamp(max=n - 2).long()
        return AxisWeights(index, t - index)


def interpolation_matrix(weights: AxisWeights, nodes: int) -> torch.Tensor:
    """The (L, nodes) matrix of linear interpolation weights along one axis."""
    rows = torch.arange(len(weights.index), device=weights.index.device)
    matrix = torch.zeros(len(weights.index), nodes, dtype=weights.frac.dtype,
                         device=weights.frac.device)
    matrix[rows, weights.index] = 1.0 - weights.frac
    matrix[rows, weights.index + 1] += weights.frac
    return matrix


def interpolate_grid(values: torch.Tensor, weights: list[AxisWeights]) -> torch.Tensor:
    """Trilinear interpolation of node ``values`` (C, n0, n1, n2) at the grid of points whose
    per-axis weights are ``weights``; returns (C, L0, L1, L2).

    Each axis is one matrix product with its (L, n) interpolation matrix, the last axis first
    while the array is small: products stream through memory once, forwards and backwards,
    where gathering the two neighbours and blending them would pass over it three times.
    """
    c, n0, n1, n2 = values.shape
    m0, m1, m2 = (interpolation_matrix(w, n).to(values.dtype)
                  for w, n in zip(weights, (n0, n1, n2), strict=True))
    out = values @ m2.T  # (C, n0, n1, L2)
    out = m1 @ out  # (C, n0, L1, L2)
    return (m0 @ out.reshape(c, n0, -1)).reshape(c, m0.shape[0], m1.shape[0], m2.shape[0])
