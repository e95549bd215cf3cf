"""Affine registration in torch: centre-of-mass initialisation, then multi-resolution Adam on the
12 affine parameters maximising global normalised cross-correlation (NCC) inside the fixed mask.
Each level uses at most ``MAX_POINTS`` fixed voxels (a fixed random subset) to bound the cost.

The result maps fixed (template) world RAS mm points to moving (native) world RAS mm points, the
convention ITK uses for a transform that resamples the moving image onto the fixed grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from nir.spatial.geometry import apply_matrix, sample, voxel_sizes, voxel_to_norm

DEFAULT_LEVELS_MM = (4.0, 2.0)
DEFAULT_ITERATIONS = (120, 60)
MAX_POINTS = 60_000
LR_MATRIX = 0.004
LR_TRANSLATION_MM = 0.4


@dataclass(frozen=True)
class AffineResult:
    """Fixed-world-to-moving-world 4x4 RAS matrix and the final NCC (1 = identical)."""

    matrix: np.ndarray
    ncc: float


@dataclass(frozen=True)
class _Level:
    points: torch.Tensor  # (N, 3) fixed world mm
    values: torch.Tensor  # (N,) fixed intensities
    moving: torch.Tensor  # (4, I, J, K) moving image and its gradient at this level
    world_to_norm: torch.Tensor  # 4x4 world mm -> moving normalised coords


def register_affine(fixed: np.ndarray, fixed_affine: np.ndarray, fixed_mask: np.ndarray,
                    moving: np.ndarray, moving_affine: np.ndarray,
                    levels_mm: tuple[float, ...] = DEFAULT_LEVELS_MM,
                    iterations: tuple[int, ...] = DEFAULT_ITERATIONS,
                    device: str = "cpu", seed: int = 0) -> AffineResult:
    """Align ``moving`` to ``fixed`` (both skull-stripped, intensities in [0, 1])."""
    dev = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    centre = _centre_of_mass(fixed, fixed_affine)
    shift = _centre_of_mass(moving, moving_affine) - centre
    linear = torch.zeros(3, 3, dtype=torch.float64, device=dev, requires_grad=True)
    translation = torch.zeros(3, dtype=torch.float64, device=dev, requires_grad=True)
    c = torch.as_tensor(centre, device=dev)
    t0 = torch.as_tensor(shift, device=dev)

    def matrix() -> torch.Tensor:
        m = torch.eye(4, dtype=torch.float64, device=dev)
        a = torch.eye(3, dtype=torch.float64, device=dev) + linear
        m = torch.cat([torch.cat([a, (c + t0 + translation - a @ c)[:, None]], 1), m[3:]], 0)
        return m

    ncc = float("nan")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the per-step tensors are small: threads only add sync overhead
    try:
        for level_mm, n_iter in zip(levels_mm, iterations, strict=True):
            level = _make_level(fixed, fixed_affine, fixed_mask, moving, moving_affine,
                                level_mm, dev, generator)
            scale = level_mm / max(levels_mm)
            optim = torch.optim.Adam([{"params": [linear], "lr": LR_MATRIX * scale},
                                      {"params": [translation], "lr": LR_TRANSLATION_MM * scale}])
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, max(n_iter, 1), eta_min=0.0)
            for _ in range(n_iter):
                optim.zero_grad()
                loss = -_ncc(level, matrix())
                loss.backward()
                optim.step()
                sched.step()
            with torch.no_grad():
                ncc = float(_ncc(level, matrix()))
    finally:
        torch.set_num_threads(threads)
    return AffineResult(matrix().detach().cpu().numpy(), ncc)


def _centre_of_mass(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre of an image in world mm."""
    vox = np.asarray(ndi.center_of_mass(np.clip(image, 0, None)))
    return (affine @ np.append(vox, 1.0))[:3]


class _SampleWithGradient(torch.autograd.Function):
    """Trilinear sampling whose backward uses a precomputed image gradient: much cheaper on CPU
    than differentiating ``grid_sample``, and it yields the gradient w.r.t. the points only."""

    @staticmethod
    def forward(ctx, stack: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        out = sample(stack, points)
        ctx.save_for_backward(out[1:])
        return out[0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        (gradient,) = ctx.saved_tensors
        return None, grad[:, None] * gradient.T


def _with_gradient(image: torch.Tensor) -> torch.Tensor:
    """Stack an image (1, I, J, K) with its derivatives w.r.t. normalised (i, j, k) coords."""
    grads = torch.gradient(image[0])
    scaled = [g * (n - 1) / 2.0 for g, n in zip(grads, image.shape[1:], strict=True)]
    return torch.cat([image, torch.stack(scaled)], dim=0)


def _pool(image: np.ndarray, affine: np.ndarray, level_mm: float,
          dev: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """Block-average ``image`` to about ``level_mm`` voxels; returns (tensor, affine)."""
    spacing = voxel_sizes(affine)
    factor = [max(1, round(level_mm / s)) for s in spacing]
    t = torch.as_tensor(image, dtype=torch.float32, device=dev)[None, None]
    pooled = F.avg_pool3d(t, factor, stride=factor, ceil_mode=True, count_include_pad=False)[0]
    scale = np.eye(4)
    scale[:3, :3] = np.diag(factor)
    scale[:3, 3] = (np.asarray(factor) - 1) / 2.0
    return pooled, affine @ scale


def _make_level(fixed: np.ndarray, fixed_affine: np.ndarray, fixed_mask: np.ndarray,
                moving: np.ndarray, moving_affine: np.ndarray, level_mm: float,
                dev: torch.device, generator: torch.Generator) -> _Level:
    fixed_t, fixed_aff = _pool(fixed, fixed_affine, level_mm, dev)
    mask_t, _ = _pool(fixed_mask.astype(np.float32), fixed_affine, level_mm, dev)
    inside = F.max_pool3d(mask_t[None], 3, stride=1, padding=1)[0, 0] > 0
    ijk = torch.nonzero(inside).to(torch.float64)
    if len(ijk) > MAX_POINTS:
        ijk = ijk[torch.randperm(len(ijk), generator=generator)[:MAX_POINTS].to(dev)]
    points = apply_matrix(torch.as_tensor(fixed_aff, device=dev), ijk)
    moving_t, moving_aff = _pool(moving, moving_affine, level_mm, dev)
    to_norm = voxel_to_norm(tuple(moving_t.shape[1:])) @ np.linalg.inv(moving_aff)
    values = fixed_t[0][tuple(ijk.long().T)]
    return _Level(points, values, _with_gradient(moving_t), torch.as_tensor(to_norm, device=dev))


def _ncc(level: _Level, matrix: torch.Tensor) -> torch.Tensor:
    """Global NCC between the fixed samples and the moving image at the mapped points."""
    norm = apply_matrix(level.world_to_norm @ matrix, level.points).to(torch.float32)
    warped = _SampleWithGradient.apply(level.moving, norm)
    f = level.values - level.values.mean()
    w = warped - warped.mean()
    return (f * w).sum() / torch.sqrt((f * f).sum() * (w * w).sum() + 1e-8)
