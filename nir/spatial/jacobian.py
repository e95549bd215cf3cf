"""Jacobian determinant of a displacement field given in world millimetres."""

from __future__ import annotations

import numpy as np
import torch

from nir.spatial.geometry import combine, slabs


def _derivative(f: torch.Tensor, axis: int, start: int, stop: int) -> torch.Tensor:
    """df/d(voxel axis) at indices start:stop of that axis, as ``torch.gradient`` computes it on
    the whole of ``f``: central differences inside, one-sided at the first and last voxel."""
    n = f.shape[axis]
    pieces = []
    if start == 0:
        pieces.append(f.narrow(axis, 1, 1) - f.narrow(axis, 0, 1))
    inner_start, inner_stop = max(start, 1), min(stop, n - 1)
    if inner_stop > inner_start:
        size = inner_stop - inner_start
        pieces.append((f.narrow(axis, inner_start + 1, size)
                       - f.narrow(axis, inner_start - 1, size)) / 2)
    if stop == n:
        pieces.append(f.narrow(axis, n - 1, 1) - f.narrow(axis, n - 2, 1))
    return torch.cat(pieces, dim=axis)


def det3(m: list[list[torch.Tensor]]) -> torch.Tensor:
    """Determinant of 3x3 matrices given by their entries m[row][column] (tensors alike)."""
    (a, b, c), (d, e, f), (g, h, i) = m
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def jacobian_determinant_map(displacement_ras: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    """det(I + dD/dx) at every voxel for a (I, J, K, 3) RAS-mm displacement on ``affine``'s grid.

    Derivatives are central differences (one-sided at the borders) along the voxel axes,
    converted to world derivatives with the inverse of the affine's 3x3 part.  Computed slab by
    slab (:func:`nir.spatial.geometry.slabs`), each of the nine entries as its own tensor: no
    (..., 3, 3) stack, and only slab-sized temporaries.
    """
    d = displacement_ras if displacement_ras.is_floating_point() else displacement_ras.float()
    inv = torch.as_tensor(np.linalg.inv(affine[:3, :3]), dtype=d.dtype).tolist()
    detj = torch.empty(d.shape[:3], dtype=d.dtype, device=d.device)
    for slab in slabs(d.shape[:3]):
        rows = []
        for c in range(3):  # row c: dD_c/dworld_w = sum_a dD_c/dvoxel_a * inv[a][w], plus I
            component = d[..., c]
            grads = [_derivative(component, 0, slab.start, slab.stop)]
            grads += [_derivative(component[slab], axis, 0, n)
                      for axis, n in ((1, d.shape[1]), (2, d.shape[2]))]
            rows.append([combine(grads, [inv[a][w] for a in range(3)], float(c == w))
                         for w in range(3)])
        detj[slab] = det3(rows)
    return detj
