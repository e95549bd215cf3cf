"""Similarity and regularity terms on grid-structured samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def local_ncc(fixed: torch.Tensor, warped: torch.Tensor, window: int,
              eps: float = 1e-5) -> torch.Tensor:
    """Mean squared local NCC over cubic windows; inputs (B, 1, D, H, W); returns 1 - mean cc.

    Windows use valid positions only.  If a patch is smaller than the window, the window
    shrinks to the patch (one NCC per patch).
    """
    w = min(window, *fixed.shape[2:])
    stats = torch.cat([fixed, warped, fixed * fixed, warped * warped, fixed * warped], dim=1)
    mean = box_mean(stats, w)
    mf, mw, mff, mww, mfw = mean.unbind(dim=1)
    cov = mfw - mf * mw
    var_f = (mff - mf * mf).clamp_min(0)
    var_w = (mww - mw * mw).clamp_min(0)
    cc = cov * cov / (var_f * var_w + eps)
    return 1.0 - cc.mean()


def box_mean(volume: torch.Tensor, width: int) -> torch.Tensor:
    """Mean over every valid ``width``^3 cube of (B, C, D, H, W), as three separable 1D means."""
    out = volume
    for kernel in ((width, 1, 1), (1, width, 1), (1, 1, width)):
        out = F.avg_pool3d(out, kernel_size=kernel, stride=1)
    return out


def global_ncc(fixed: torch.Tensor, warped: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """1 - squared NCC over all samples."""
    f = fixed.flatten() - fixed.mean()
    m = warped.flatten() - warped.mean()
    cc = (f @ m) ** 2 / ((f @ f) * (m @ m) + eps)
    return 1.0 - cc


def jacobian_columns(phi: torch.Tensor,
                     step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The columns of d phi / d x by forward differences on a sampled grid.

    ``phi`` (B, D, H, W, 3) are deformed positions of grid points spaced by ``step`` (3,) along
    the three grid axes (same units as phi).  Each column is (B, D-1, H-1, W-1, 3).
    """
    d0 = (phi[:, 1:, :-1, :-1] - phi[:, :-1, :-1, :-1]) / step[0]
    d1 = (phi[:, :-1, 1:, :-1] - phi[:, :-1, :-1, :-1]) / step[1]
    d2 = (phi[:, :-1, :-1, 1:] - phi[:, :-1, :-1, :-1]) / step[2]
    return d0, d1, d2


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


def folding_penalty(det: torch.Tensor, volume_weight: float = 0.0) -> torch.Tensor:
    """mean ReLU(-det J) + volume_weight * mean |1 - det J|."""
    penalty = F.relu(-det).mean()
    if volume_weight:
        penalty = penalty + volume_weight * (1.0 - det).abs().mean()
    return penalty
