"""Similarity and regularity terms: local NCC on grid-structured samples, and the Jacobian
terms on a field's lattice."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from nir.spatial.jacobian import det3

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


def displacement_gradients(displacement: torch.Tensor, spacing: float | Sequence[float]
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """du/dx_a for a = 0, 1, 2 by forward differences along the last three axes, one per cell.

    ``displacement`` (3, ..., n0, n1, n2) holds u at points ``spacing`` apart (one value, or
    one per axis; same units as u).  Each result is (3, ..., n0-1, n1-1, n2-1): its row r is
    du_r/dx_a.
    """
    steps = (spacing,) * 3 if isinstance(spacing, (int, float)) else tuple(spacing)
    u = displacement
    base = u[..., :-1, :-1, :-1]
    shifted = (u[..., 1:, :-1, :-1], u[..., :-1, 1:, :-1], u[..., :-1, :-1, 1:])
    d0, d1, d2 = ((s - base) / h for s, h in zip(shifted, steps, strict=True))
    return d0, d1, d2


def _jacobian_entries(gradients: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
    """The entries [row][column] of d phi / d x = I + du/dx from displacement_gradients."""
    return [[g[r] + 1.0 if r == a else g[r] for a, g in enumerate(gradients)]
            for r in range(3)]


def jacobian_terms(gradients: Sequence[torch.Tensor], folding: float, volume: float = 0.0,
                   smoothness: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, det J) from du/dx_a (as :func:`displacement_gradients` returns them): ``folding``
    x mean ReLU(-det J) + ``volume`` x mean |1 - det J| + ``smoothness`` x mean ||du/dx||_F^2,
    with J = I + du/dx.  Differentiable by autograd."""
    det = det3(_jacobian_entries(gradients))
    loss = det.new_zeros(())
    if folding:
        loss = loss + folding * F.relu(-det).mean()
    if volume:
        loss = loss + volume * (1.0 - det).abs().mean()
    if smoothness:
        loss = loss + smoothness * sum((g * g).sum() for g in gradients) / det.numel()
    return loss, det


def lattice_det(displacement: torch.Tensor, spacing: float) -> torch.Tensor:
    """det(d phi / d x), phi = x + u, in every cell of a lattice, (n0-1, n1-1, n2-1)."""
    return det3(_jacobian_entries(displacement_gradients(displacement, spacing)))


def _cofactor(m: list[list[torch.Tensor]], r: int, a: int, out: torch.Tensor) -> torch.Tensor:
    """d det / d m[r][a] of 3x3 matrices given by their entries, written into ``out``."""
    (r0, r1), (a0, a1) = [i for i in range(3) if i != r], [i for i in range(3) if i != a]
    first, second = ((a0, a1), (a1, a0)) if (r + a) % 2 == 0 else ((a1, a0), (a0, a1))
    torch.mul(m[r0][first[0]], m[r1][first[1]], out=out)
    return out.addcmul_(m[r0][second[0]], m[r1][second[1]], value=-1.0)


class _LatticeRegularity(torch.autograd.Function):
    """folding x mean ReLU(-det J) + volume x mean |1 - det J| + smoothness x mean ||du/dx||^2
    over a lattice's cells, with the gradient written out: d det / d J is the cofactor
    matrix, and a forward difference hands its gradient back to its two nodes."""

    @staticmethod
    def forward(ctx: Any, displacement: torch.Tensor, spacing: float, folding: float,
                volume: float, smoothness: float) -> torch.Tensor:
        gradients = displacement_gradients(displacement, spacing)
        loss, det = jacobian_terms(gradients, folding, volume, smoothness)
        ctx.save_for_backward(*gradients, det)
        ctx.settings = (displacement.shape, spacing, folding, volume, smoothness)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        *gradients, det = ctx.saved_tensors
        shape, spacing, folding, volume, smoothness = ctx.settings
        scale = grad / (det.numel() * spacing)  # a difference's gradient is 1 / spacing
        coef = torch.zeros_like(det)
        if folding:
            coef = coef - folding * (det < 0).to(det.dtype)
        if volume:
            coef = coef - volume * torch.sign(1.0 - det)
        coef = coef * scale
        m = _jacobian_entries(gradients)
        out = det.new_zeros(shape)
        cells = tuple(slice(0, n - 1) for n in shape[1:])
        node_grad = det.new_empty((3, *det.shape))
        for a, g in enumerate(gradients):
            for r in range(3):
                _cofactor(m, r, a, node_grad[r])
            node_grad.mul_(coef)
            if smoothness:
                node_grad.addcmul_(g, 2.0 * smoothness * scale)
            ahead = list(cells)
            ahead[a] = slice(1, shape[a + 1])
            out[(slice(None), *ahead)] += node_grad
            out[(slice(None), *cells)] -= node_grad
        return out, None, None, None, None


def lattice_regularity(displacement: torch.Tensor, spacing: float, folding: float,
                       volume: float = 0.0, smoothness: float = 0.0) -> torch.Tensor:
    """``folding`` x mean ReLU(-det J) + ``volume`` x mean |1 - det J| + ``smoothness`` x mean
    ||du/dx||_F^2 over the cells of a lattice; ``displacement`` as in displacement_gradients."""
    return _LatticeRegularity.apply(displacement, spacing, folding, volume, smoothness)
