"""Full-grid evaluation of fitted fields and of their composition."""

from __future__ import annotations

import torch

from nir.engine.fields import NeuralField
from nir.spatial.frame import FieldFrame
from nir.spatial.geometry import transform_points


def voxel_axes(frame: FieldFrame, device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """Field-unit positions of the fixed voxel centres along each axis."""
    m = frame.field_from_voxel
    return [float(m[a, a]) * torch.arange(n, device=device, dtype=torch.float32)
            + float(m[a, 3]) for a, n in enumerate(frame.shape)]


@torch.no_grad()
def dense_deformation(fields: list[NeuralField], frame: FieldFrame,
                      device: torch.device | str = "cpu", inverse: bool = False) -> torch.Tensor:
    """phi = phi_1 o phi_2 o ... o phi_n at every fixed voxel centre, field units (I, J, K, 3).

    ``fields`` are in fitting order (NF1 first): each later field acts on the fixed side of
    the earlier ones.  With ``inverse``, phi^-1 = phi_n^-1 o ... o phi_1^-1 (velocity fields).
    The innermost field is read separably on the voxel grid, each outer one at the points the
    inner ones reached.
    """
    axes = voxel_axes(frame, device)
    order = list(fields) if inverse else list(reversed(fields))
    first = order[0]
    u = first.at_grid(first.node_displacement(inverse=inverse), axes).movedim(0, -1)
    phi = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).add_(u)
    for outer in order[1:]:
        phi = outer.at_points(outer.node_displacement(inverse=inverse), phi)
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
