"""Full-grid evaluation of fitted fields and of their composition."""

from __future__ import annotations

from typing import Protocol

import torch

from nir.spatial.frame import FieldFrame
from nir.spatial.geometry import transform_points


class FieldModel(Protocol):
    """A fitted deformation field as inference reads it: lattice
    (:class:`~nir.engine.fields.NeuralField`) or continuous
    (:class:`~nir.engine.continuous.ContinuousField`)."""

    def deform_grid(self, axes: list[torch.Tensor], inverse: bool = False) -> torch.Tensor:
        """phi (or phi^-1) on the grid of field-unit ``axes``, (L0, L1, L2, 3)."""

    def deform_points(self, points: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """phi (or phi^-1) at field points (..., 3)."""

    def requires_grad_(self, requires_grad: bool = True) -> object:
        """Freeze (False) or unfreeze the parameters."""


def voxel_axes(frame: FieldFrame, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Field-unit positions of the fixed voxel centres along each axis."""
    m = frame.field_from_voxel
    return [float(m[a, a]) * torch.arange(n, device=device, dtype=torch.float32)
            + float(m[a, 3]) for a, n in enumerate(frame.shape)]


@torch.no_grad()
def dense_deformation(fields: list[FieldModel], frame: FieldFrame,
                      device: torch.device | str = "cpu", inverse: bool = False) -> torch.Tensor:
    """phi = phi_1 o phi_2 o ... o phi_n at every fixed voxel centre, field units (I, J, K, 3).

    ``fields`` are in fitting order (NF1 first): each later field acts on the fixed side of
    the earlier ones.  With ``inverse``, phi^-1 = phi_n^-1 o ... o phi_1^-1 (velocity fields).
    The innermost field is read on the voxel grid (separably, for a lattice field), each outer
    one at the points the inner ones reached.
    """
    axes = voxel_axes(frame, device)
    order = list(fields) if inverse else list(reversed(fields))
    phi = order[0].deform_grid(axes, inverse)
    for outer in order[1:]:
        phi = outer.deform_points(phi, inverse)
    return phi


def field_to_world_displacement(phi: torch.Tensor, frame: FieldFrame) -> torch.Tensor:
    """Deformed positions in field units -> displacement in world RAS mm, (I, J, K, 3)."""
    axes = voxel_axes(frame, phi.device)
    scale = torch.tensor([1.0 / float(frame.field_from_voxel[a, a]) for a in range(3)],
                         device=phi.device)
    affine3 = torch.as_tensor(frame.affine[:3, :3], dtype=phi.dtype, device=phi.device)
    moved = phi.clone()
    for a, axis in enumerate(axes):  # field-unit displacement along each voxel axis
        shape = [1, 1, 1]
        shape[a] = -1
        moved[..., a] -= axis.view(shape)
    return transform_points(moved, affine3 * scale)
