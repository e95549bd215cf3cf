"""Jacobian determinant of a displacement field given in world millimetres."""

from __future__ import annotations

import numpy as np
import torch

from nir.losses import det3


def jacobian_determinant_map(displacement_ras: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    """det(I + dD/dx) at every voxel for a (I, J, K, 3) RAS-mm displacement on ``affine``'s grid.

    Derivatives are central differences (one-sided at the borders) along the voxel axes,
    converted to world derivatives with the inverse of the affine's 3x3 part.
    """
    d = displacement_ras if displacement_ras.is_floating_point() else displacement_ras.float()
    grads = torch.gradient(d, dim=(0, 1, 2))  # each (I, J, K, 3): dD/d(voxel axis a)
    dvox = torch.stack(grads, dim=-1)  # (..., 3 components, 3 voxel axes)
    inv = torch.as_tensor(np.linalg.inv(affine[:3, :3]), dtype=d.dtype, device=d.device)
    jac = dvox @ inv + torch.eye(3, dtype=d.dtype, device=d.device)  # dD/dworld + I
    return det3(jac[..., 0], jac[..., 1], jac[..., 2])
