"""Similarity and regularity terms: local NCC on grid-structured samples, and the Jacobian
terms on a field's lattice."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

NCC_EPS = 1e-5

Width = int | Sequence[int]  # a window side, the same along the three axes or one per axis


def widths(width: Width) -> tuple[int, int, int]:
    """A window's side along each of the three axes."""
    if isinstance(width, int):
        return (width, width, width)
    return tuple(int(w) for w in width)  # type: ignore[return-value]


def box_sum(volume: torch.Tensor, width: Width) -> torch.Tensor:
    """Sum over every valid window (``width`` per axis) of (B, C, D, H, W), by running sums.

    Each axis's running sum is written after one zero slice, so every window is the difference
    of two slices of it.
    """
    out = volume
    for dim, w in zip((2, 3, 4), widths(width), strict=True):
        n = out.shape[dim]
        total = out.new_empty((*out.shape[:dim], n + 1, *out.shape[dim + 1:]))
        total.narrow(dim, 0, 1).zero_()
        torch.cumsum(out, dim, out=total.narrow(dim, 1, n))
        out = total.narrow(dim, w, n - w + 1) - total.narrow(dim, 0, n - w + 1)
    return out


def box_sum_adjoint(windows: torch.Tensor, width: Width) -> torch.Tensor:
    """The adjoint of :func:`box_sum`: each voxel gets the sum over the windows containing it."""
    pads = [p for w in reversed(widths(width)) for p in (w - 1, w - 1)]
    return box_sum(F.pad(windows, pads), width)


class _LocalNCC(torch.autograd.Function):
    """1 - mean squared local NCC, with the gradient for the warped image written out.

    The backward pass needs three adjoint box sums of window-level derivatives instead of
    differentiating every running sum, and the fixed image's sums may be passed in (they
    repeat whenever the sampler revisits a grid).
    """

    @staticmethod
    def forward(ctx: Any, fixed: torch.Tensor, warped: torch.Tensor, width: tuple[int, ...],
                fixed_sums: torch.Tensor) -> torch.Tensor:
        n = float(math.prod(width))
        s_m, s_mm, s_fm = box_sum(torch.cat([warped, warped * warped, fixed * warped], 1),
                                  width).unbind(1)
        mean_f, mean_ff = (fixed_sums / n).unbind(1)
        mean_m = s_m / n
        cov = s_fm / n - mean_f * mean_m
        var_f = (mean_ff - mean_f * mean_f).clamp_min(0)
        raw_var_m = s_mm / n - mean_m * mean_m
        var_m = raw_var_m.clamp_min(0)
        denom = var_f * var_m + NCC_EPS
        cc = cov * cov / denom
        d_cov = 2.0 * cov / denom / n
        d_var = torch.where(raw_var_m > 0, -cc * var_f / denom, 0.0) / n
        g_m = -d_cov * mean_f - 2.0 * d_var * mean_m
        ctx.save_for_backward(fixed, warped, torch.stack([g_m, d_var, d_cov], 1))
        ctx.width = width
        ctx.count = cc.numel()
        return 1.0 - cc.mean()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor, None, None]:
        fixed, warped, window_grads = ctx.saved_tensors
        full = box_sum_adjoint(window_grads, ctx.width)
        d_warped = full[:, 0:1] + 2.0 * warped * full[:, 1:2] + fixed * full[:, 2:3]
        return None, d_warped * (-grad / ctx.count), None, None


def fixed_window_sums(fixed: torch.Tensor, width: Width) -> torch.Tensor:
    """Box sums of the fixed image and its square, (B, 2, ...): the fixed half of local NCC."""
    return box_sum(torch.cat([fixed, fixed * fixed], 1), width)


def ncc_width(window: Width, fixed: torch.Tensor) -> tuple[int, int, int]:
    """The window actually used: ``window``, shrunk along each axis where a patch is smaller."""
    return tuple(min(w, n) for w, n in zip(widths(window), fixed.shape[2:], strict=True))  # type: ignore[return-value]


def local_ncc(fixed: torch.Tensor, warped: torch.Tensor, window: Width,
              fixed_sums: torch.Tensor | None = None) -> torch.Tensor:
    """1 - mean squared local NCC over box windows (``window`` per axis); (B, 1, D, H, W).

    Windows use valid positions only.  Along an axis where a patch is smaller than the
    window, the window shrinks to the patch.  ``fixed_sums`` may hold
    :func:`fixed_window_sums` of ``fixed`` for the same window.
    """
    width = ncc_width(window, fixed)
    if fixed_sums is None:
        fixed_sums = fixed_window_sums(fixed, width)
    return _LocalNCC.apply(fixed, warped, width, fixed_sums)


def global_ncc(fixed: torch.Tensor, warped: torch.Tensor, eps: float = NCC_EPS) -> torch.Tensor:
    """1 - squared NCC over all samples."""
    f = fixed.flatten() - fixed.mean()
    m = warped.flatten() - warped.mean()
    cc = (f @ m) ** 2 / ((f @ f) * (m @ m) + eps)
    return 1.0 - cc


def jacobian_columns(displacement: torch.Tensor,
                     spacing: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The columns of d phi / d x, phi = x + u, by forward differences on a lattice.

    ``displacement`` (3, n0, n1, n2) holds u at nodes ``spacing`` apart (same units as u).
    Each column is (n0-1, n1-1, n2-1, 3).
    """
    u = displacement
    base = u[:, :-1, :-1, :-1]
    columns = []
    for axis, diff in enumerate((u[:, 1:, :-1, :-1], u[:, :-1, 1:, :-1], u[:, :-1, :-1, 1:])):
        column = ((diff - base) / spacing).movedim(0, -1)
        columns.append(column + torch.eye(3, dtype=u.dtype, device=u.device)[axis])
    return columns[0], columns[1], columns[2]


def diffusion_energy(d0: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
    """mean ||d phi / d x - I||_F^2: the squared gradient of the displacement."""
    eye = torch.eye(3, dtype=d0.dtype, device=d0.device)
    return sum(((d - eye[k]) ** 2).sum(-1) for k, d in enumerate((d0, d1, d2))).mean()


def det3(c0: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """Determinant of 3x3 matrices given as their three columns (..., 3)."""
    a, d, g = c0.unbind(-1)
    b, e, h = c1.unbind(-1)
    c, f, i = c2.unbind(-1)
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def folding_penalty(det: torch.Tensor) -> torch.Tensor:
    """mean ReLU(-det J): how far the map folds."""
    return F.relu(-det).mean()


def volume_change(det: torch.Tensor) -> torch.Tensor:
    """mean |1 - det J|: how much the map changes local volume."""
    return (1.0 - det).abs().mean()
