"""Full-grid evaluation of a fitted field, in chunks so memory stays bounded."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from nir.frame import FieldFrame
from nir.geometry import apply_matrix, voxel_indices


def lattice_axes(shape: tuple[int, int, int], stride: int,
                 device: torch.device) -> list[torch.Tensor]:
    """Voxel positions of a lattice spanning each axis end to end at about ``stride`` voxels."""
    return [torch.linspace(0, n - 1, (n - 2) // stride + 2 if n > 1 else 1, device=device)
            for n in shape]


@torch.no_grad()
def dense_deformation(model: nn.Module, frame: FieldFrame, device: torch.device,
                      chunk_points: int = 262144, stride: int = 1, progress: bool = False,
                      description: str = "inference") -> torch.Tensor:
    """phi at every fixed voxel centre, in field units, shape (I, J, K, 3), on ``device``.

    The field is evaluated on a lattice of about ``stride`` voxels spanning the grid end to end
    (``stride=1``: every voxel) and its displacement upsampled trilinearly to every voxel.
    The lattice is processed in slabs along i of at most ``chunk_points`` points, so peak
    memory does not grow with the grid beyond the output itself.
    """
    axes = lattice_axes(frame.shape, stride, device)
    ni, nj, nk = (len(a) for a in axes)
    field_from_voxel = torch.as_tensor(frame.field_from_voxel, dtype=torch.float32, device=device)
    disp = torch.empty(ni, nj, nk, 3, device=device)
    jk = torch.stack(torch.meshgrid(axes[1], axes[2], indexing="ij"), dim=-1)
    slab = max(1, chunk_points // (nj * nk))
    for start in tqdm(range(0, ni, slab), desc=description, disable=not progress, unit="slab",
                      mininterval=1.0, dynamic_ncols=True):
        stop = min(ni, start + slab)
        vox = torch.cat([axes[0][start:stop].view(-1, 1, 1, 1).expand(-1, nj, nk, 1),
                         jk.unsqueeze(0).expand(stop - start, -1, -1, -1)], dim=-1)
        x = apply_matrix(field_from_voxel, vox)
        disp[start:stop] = model(x) - x
    if (ni, nj, nk) != frame.shape:
        disp = F.interpolate(disp.permute(3, 0, 1, 2)[None], size=frame.shape,
                             mode="trilinear", align_corners=True)[0].permute(1, 2, 3, 0)
    return apply_matrix(field_from_voxel, voxel_indices(frame.shape, device)) + disp


def field_to_world_displacement(phi: torch.Tensor, frame: FieldFrame) -> torch.Tensor:
    """Deformed positions in field units -> displacement in world RAS mm, (I, J, K, 3)."""
    voxel_from_field = torch.as_tensor(frame.voxel_from_field, dtype=phi.dtype,
                                       device=phi.device)
    affine3 = torch.as_tensor(frame.affine[:3, :3], dtype=phi.dtype, device=phi.device)
    idx = voxel_indices(frame.shape, phi.device, phi.dtype)
    return (apply_matrix(voxel_from_field, phi) - idx) @ affine3.T
