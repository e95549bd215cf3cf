"""Coordinate samplers: where the field is evaluated at each iteration.

Each sampler returns a :class:`Batch` of grid-structured points in fixed voxel coordinates
(B, D, H, W, 3), the fixed intensities there (B, 1, D, H, W) and the grid spacing in voxels,
so that local NCC and finite-difference Jacobians can be computed on the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nir.geometry import sample, voxel_indices, voxel_to_norm


@dataclass
class Batch:
    """Sampled points (fixed voxel coords), fixed intensities, grid step (voxels)."""

    points: torch.Tensor
    fixed: torch.Tensor
    step_vox: float
    use_local_ncc: bool = True
    lattice_norm_from_voxel: torch.Tensor | None = None  # set when points are one full lattice


def _randint(high: int, size: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, high, size, generator=generator)


class DownsizeSampler:
    """A strided grid (every ``stride``-th voxel) with a new random integer offset each call."""

    def __init__(self, fixed: torch.Tensor, stride: int, generator: torch.Generator) -> None:
        self.fixed = fixed
        self.stride = stride
        self.generator = generator
        self.counts = [(n - stride) // stride + 1 for n in fixed.shape]
        self.base = [torch.arange(c, device=fixed.device) * stride for c in self.counts]

    def sample(self) -> Batch:
        s = self.stride
        off = _randint(s, (3,), self.generator).tolist()
        c0, c1, c2 = self.counts
        fixed = self.fixed[off[0]::s, off[1]::s, off[2]::s][:c0, :c1, :c2]
        axes = [(b + o).to(self.fixed.dtype) for b, o in zip(self.base, off, strict=True)]
        points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
        to_norm = torch.eye(4, dtype=self.fixed.dtype, device=self.fixed.device)
        for a, (o, c) in enumerate(zip(off, self.counts, strict=True)):
            to_norm[a, a] = 2.0 / (s * max(c - 1, 1))
            to_norm[a, 3] = -1.0 - o * to_norm[a, a]
        return Batch(points.unsqueeze(0), fixed[None, None], float(s),
                     lattice_norm_from_voxel=to_norm)


class MinipatchSampler:
    """``patches`` cubes of ``size`` voxels at full resolution, centred on foreground voxels."""

    def __init__(self, fixed: torch.Tensor, mask: torch.Tensor, patches: int, size: int,
                 generator: torch.Generator) -> None:
        self.fixed = fixed
        self.patches = patches
        self.size = min(size, *fixed.shape)
        self.generator = generator
        self.centres = mask.nonzero()
        if len(self.centres) == 0:
            self.centres = torch.nonzero(torch.ones_like(fixed, dtype=torch.bool))
        self.high = torch.tensor(fixed.shape, device=fixed.device) - self.size
        self.offsets = voxel_indices((self.size,) * 3, fixed.device, torch.int64)

    def sample(self) -> Batch:
        pick = _randint(len(self.centres), (self.patches,), self.generator).to(self.centres.device)
        corners = (self.centres[pick] - self.size // 2).clamp(min=torch.zeros_like(self.high),
                                                             max=self.high)
        idx = corners[:, None, None, None, :] + self.offsets  # (B, s, s, s, 3)
        fixed = self.fixed[idx[..., 0], idx[..., 1], idx[..., 2]]
        return Batch(idx.to(self.fixed.dtype), fixed.unsqueeze(1), 1.0)


class RandomSampler:
    """``n`` random points in the foreground, each with a 2x2x2 one-voxel stencil.

    The stencil gives finite-difference Jacobians; similarity is global NCC over the samples.
    """

    def __init__(self, fixed: torch.Tensor, mask: torch.Tensor, n: int,
                 generator: torch.Generator) -> None:
        self.fixed = fixed
        self.n = n
        self.generator = generator
        self.centres = mask.nonzero().to(fixed.dtype)
        if len(self.centres) == 0:
            self.centres = torch.nonzero(torch.ones_like(fixed, dtype=torch.bool)).to(fixed.dtype)
        self.norm = torch.as_tensor(voxel_to_norm(tuple(fixed.shape)), dtype=fixed.dtype,
                                    device=fixed.device)
        self.stencil = voxel_indices((2, 2, 2), fixed.device, fixed.dtype)
        self.high = torch.tensor(fixed.shape, dtype=fixed.dtype, device=fixed.device) - 2

    def sample(self) -> Batch:
        device = self.fixed.device
        pick = _randint(len(self.centres), (self.n,), self.generator).to(device)
        jitter = (torch.rand(self.n, 3, generator=self.generator) - 0.5).to(device)
        base = (self.centres[pick] + jitter).clamp(min=0).minimum(self.high)
        points = base[:, None, None, None, :] + self.stencil  # (n, 2, 2, 2, 3)
        norm = points @ self.norm[:3, :3].T + self.norm[:3, 3]
        fixed = sample(self.fixed[None], norm)[0]
        return Batch(points, fixed.unsqueeze(1), 1.0, use_local_ncc=False)
