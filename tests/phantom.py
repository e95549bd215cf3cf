"""A textured analytic phantom and smooth known deformations for recovery tests."""

from __future__ import annotations

import numpy as np


def phantom(points: np.ndarray, size: int) -> np.ndarray:
    """Textured ellipsoid evaluated at voxel ``points`` (..., 3) of a ``size``^3 grid."""
    c = (size - 1) / 2.0
    x, y, z = [(points[..., a] - c) / c for a in range(3)]
    inside = 1.0 / (1.0 + np.exp((x**2 / 0.8 + y**2 / 0.7 + z**2 / 0.75 - 0.8) * 25.0))
    k = 2 * np.pi / 12.0
    texture = 0.5 + 0.25 * np.sin(k * points[..., 0] + 0.5) * np.sin(k * points[..., 1]) \
        + 0.25 * np.cos(0.8 * k * points[..., 2] + 0.3 * k * points[..., 0])
    return (inside * (0.3 + texture)).astype(np.float32)


def smooth_displacement(points: np.ndarray, size: int, amplitude: float) -> np.ndarray:
    """A smooth displacement in voxels (..., 3), largest about ``amplitude`` voxels."""
    w = 2 * np.pi / size
    p0, p1, p2 = points[..., 0], points[..., 1], points[..., 2]
    u = np.stack([np.sin(w * p1) * np.cos(w * p2),
                  np.sin(w * p2 + 1.0) * np.cos(w * p0),
                  np.sin(w * p0 + 2.0) * np.cos(w * p1)], axis=-1)
    return (amplitude * u).astype(np.float32)


def voxel_grid(size: int) -> np.ndarray:
    """Voxel indices of a ``size``^3 grid, (size, size, size, 3)."""
    return np.stack(np.meshgrid(*[np.arange(size, dtype=np.float64)] * 3, indexing="ij"), -1)
