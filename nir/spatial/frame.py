"""The isotropic frame the neural field works in, tied to the fixed image's grid.

field = (voxel - centre) * spacing_mm / radius_mm, where ``radius_mm`` is half the largest
extent of the fixed image.  One field unit is therefore the same number of millimetres on every
axis, so Fourier-feature frequencies and Jacobian determinants have a physical meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nir.spatial.geometry import fixed_to_moving_norm, voxel_sizes, voxel_to_norm


@dataclass(frozen=True)
class FieldFrame:
    """Field frame of a fixed grid of ``shape`` (voxels), ``spacing`` (mm) and ``affine``."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: np.ndarray

    @classmethod
    def from_affine(cls, shape: tuple[int, int, int], affine: np.ndarray) -> FieldFrame:
        spacing = tuple(float(s) for s in voxel_sizes(affine))
        return cls(tuple(int(n) for n in shape), spacing, np.asarray(affine, np.float64))

    @property
    def radius_mm(self) -> float:
        return max((n - 1) * s for n, s in zip(self.shape, self.spacing, strict=True)) / 2.0

    @property
    def field_from_voxel(self) -> np.ndarray:
        """4x4 matrix: fixed voxel (i, j, k) -> field coordinates."""
        m = np.eye(4)
        for a in range(3):
            m[a, a] = self.spacing[a] / self.radius_mm
            m[a, 3] = -(self.shape[a] - 1) / 2.0 * m[a, a]
        return m

    @property
    def voxel_from_field(self) -> np.ndarray:
        return np.linalg.inv(self.field_from_voxel)

    @property
    def norm_from_field(self) -> np.ndarray:
        """4x4 matrix: field coordinates -> normalised coords of the fixed grid."""
        return voxel_to_norm(self.shape) @ self.voxel_from_field

    def moving_norm_from_field(self, moving_shape: tuple[int, int, int],
                               moving_affine: np.ndarray) -> np.ndarray:
        """4x4 matrix: field coordinates -> normalised coords of a moving grid (via world mm)."""
        return (fixed_to_moving_norm(self.shape, self.affine, moving_shape, moving_affine)
                @ self.norm_from_field)
