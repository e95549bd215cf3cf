"""Trilinear sampling of one volume at many points, differentiable with respect to the points.

Each fitting iteration samples the moving image at 10^5-10^6 warped points and needs the
gradient with respect to those points only.  A :class:`CornerTable` stores, for every cell of
the zero-padded volume, its 8 corner values side by side (8.5x the volume's memory), so one
sample is one contiguous row read; the value and its three partial derivatives come from the
same corners, so the backward pass is one multiplication.  Values match
``grid_sample(..., align_corners=True, padding_mode="zeros")`` to float rounding; at a point
exactly on a voxel plane the partial derivative is the one-sided difference towards higher
indices.  About 3x faster than ``grid_sample`` forward and backward on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD = 2  # zero voxels around the volume: a point beyond the first one lies in an all-zero cell
EDGE = 1e-3  # keeps clamped points inside the last cell of the table


class _Trilinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, corners: torch.Tensor, shape: tuple[int, int, int],
                coords: torch.Tensor) -> torch.Tensor:
        ctx.point_shape = tuple(coords.shape[1:])
        lows, weights = [], []
        for a, n in enumerate(shape):
            padded = (coords[a] + PAD).clamp_(0, n + 2 * PAD - 1 - EDGE)
            low = padded.to(torch.int32)  # floor: padded >= 0
            weights.append((padded - low).reshape(-1))
            lows.append(low)
        row = (lows[0] * (shape[1] + 2 * PAD - 1) + lows[1]) * (shape[2] + 2 * PAD - 1) + lows[2]
        c = corners.index_select(0, row.reshape(-1)).unbind(1)  # 8 x (N,), corner (i, j, k)
        wi, wj, wk = weights
        k00, k01, k10, k11 = c[1] - c[0], c[3] - c[2], c[5] - c[4], c[7] - c[6]
        c00, c01, c10, c11 = c[0] + wk * k00, c[2] + wk * k01, c[4] + wk * k10, c[6] + wk * k11
        j0, j1 = c01 - c00, c11 - c10
        c0, c1 = c00 + wj * j0, c10 + wj * j1
        d_i = c1 - c0
        if ctx.needs_input_grad[2]:
            partials = torch.empty(3, c0.shape[0], dtype=c0.dtype, device=c0.device)
            partials[0] = d_i
            torch.addcmul(j0, wi, j1 - j0, out=partials[1])
            k0, k1 = k00 + wj * (k01 - k00), k10 + wj * (k11 - k10)
            torch.addcmul(k0, wi, k1 - k0, out=partials[2])
            ctx.save_for_backward(partials)
        return torch.addcmul(c0, wi, d_i).reshape(coords.shape[1:])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        (partials,) = ctx.saved_tensors
        return None, None, (partials * grad.reshape(1, -1)).reshape(3, *ctx.point_shape)


class CornerTable:
    """A volume (I, J, K) prepared for :meth:`__call__`: trilinear values at voxel points.

    Outside the volume it is zero (and so is the gradient), as with zero padding.
    """

    def __init__(self, volume: torch.Tensor) -> None:
        if volume.dim() != 3:
            raise ValueError(f"CornerTable needs a 3-D volume, got shape {tuple(volume.shape)}")
        self.shape: tuple[int, int, int] = tuple(volume.shape)  # type: ignore[assignment]
        padded = F.pad(volume.detach(), (PAD,) * 6)
        size = [n + 2 * PAD - 1 for n in self.shape]
        self.corners = torch.stack([padded[a:a + size[0], b:b + size[1], c:c + size[2]]
                                    for a in (0, 1) for b in (0, 1) for c in (0, 1)],
                                   dim=-1).reshape(-1, 8)

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """Values at voxel coordinates ``coords`` (3, ...) in (i, j, k) order -> (...)."""
        return _Trilinear.apply(self.corners, self.shape, coords)
