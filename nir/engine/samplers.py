"""Coordinate samplers: where the similarity is measured at each iteration.

Each sampler returns a :class:`Batch` of fixed intensities on grid-structured samples, so that
local NCC can be computed on them: either one axis-aligned grid given by its three axes
(``axes``, the downsize sampler; the field is then read there separably) or a batch of small
grids given point by point (``points``, mini-patches and random stencils).  Positions are
fixed voxel coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nir.spatial.geometry import sample, voxel_indices, voxel_to_norm


@dataclass
class Batch:
    """Fixed intensities (B, 1, D, H, W) at grid-structured samples (fixed voxel coords)."""

    fixed: torch.Tensor
    axes: list[torch.Tensor] | None = None  # one grid: voxel positions along each axis
    points: torch.Tensor | None = None  # or B grids point by point: (B, D, H, W, 3)
    use_local_ncc: bool = True
    key: tuple[int, ...] | None = None  # names a full grid that recurs (sampler.full_grid)
    crop: tuple[slice, ...] | None = None  # the batch's part of that full grid, in samples
    step: tuple[int, int, int] = (1, 1, 1)  # voxels between neighbouring samples, per axis


def _randint(high: int, size: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, high, size, generator=generator)


def _box_slices(box: tuple[slice, slice, slice] | None,
                shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    if box is None:
        return tuple(slice(0, n) for n in shape)  # type: ignore[return-value]
    return box


class DownsizeSampler:
    """A strided grid (every ``strides[a]``-th voxel along axis a) over ``box``, with a new
    random integer offset each call.

    With ``fraction`` < 1 each call returns a random sub-box of the strided grid holding about
    that fraction of its samples (at least ``min_count`` per axis): a smaller batch, over which
    the field need only be evaluated locally.
    """

    def __init__(self, fixed: torch.Tensor, strides: tuple[int, int, int],
                 generator: torch.Generator, box: tuple[slice, slice, slice] | None = None,
                 fraction: float = 1.0, min_count: int = 1) -> None:
        self.fixed = fixed
        self.strides = tuple(int(s) for s in strides)
        self.generator = generator
        self.box = _box_slices(box, tuple(fixed.shape))
        self.counts = [max(1, (b.stop - b.start - s) // s + 1)
                       for b, s in zip(self.box, self.strides, strict=True)]
        side = fraction ** (1.0 / 3.0)
        self.sizes = [c if fraction >= 1 else min(c, max(min_count, round(c * side)))
                      for c in self.counts]

    def full_grid(self, offsets: tuple[int, ...]) -> tuple[tuple[slice, ...], torch.Tensor]:
        """The voxel slices and fixed intensities of the whole strided grid at ``offsets``."""
        slices = tuple(slice(b.start + o, b.start + o + s * (c - 1) + 1, s)
                       for b, o, s, c in zip(self.box, offsets, self.strides, self.counts,
                                             strict=True))
        return slices, self.fixed[slices][None, None]

    def sample(self) -> Batch:
        offsets = tuple(int(_randint(s, (1,), self.generator)) for s in self.strides)
        starts = [int(_randint(c - n + 1, (1,), self.generator)) for c, n in
                  zip(self.counts, self.sizes, strict=True)]
        crop = tuple(slice(st, st + n) for st, n in zip(starts, self.sizes, strict=True))
        slices = tuple(slice(full.start + full.step * c.start,
                             full.start + full.step * (c.stop - 1) + 1, full.step)
                       for full, c in zip(self.full_grid(offsets)[0], crop, strict=True))
        axes = [torch.arange(sl.start, sl.stop, sl.step, device=self.fixed.device,
                             dtype=self.fixed.dtype) for sl in slices]
        return Batch(self.fixed[slices][None, None], axes=axes, key=offsets, crop=crop,
                     step=self.strides)


class MinipatchSampler:
    """``patches`` boxes of ``size`` voxels (one side, or one per axis) at full resolution,
    centred on foreground voxels."""

    def __init__(self, fixed: torch.Tensor, mask: torch.Tensor, patches: int,
                 size: int | tuple[int, int, int], generator: torch.Generator) -> None:
        self.fixed = fixed
        self.patches = patches
        sizes = (size,) * 3 if isinstance(size, int) else size
        self.size = tuple(min(s, n) for s, n in zip(sizes, fixed.shape, strict=True))
        self.generator = generator
        self.centres = mask.nonzero()
        if len(self.centres) == 0:
            self.centres = torch.nonzero(torch.ones_like(fixed, dtype=torch.bool))
        size_t = torch.tensor(self.size, device=fixed.device)
        self.high = torch.tensor(fixed.shape, device=fixed.device) - size_t
        self.half = size_t // 2
        self.offsets = voxel_indices(self.size, fixed.device, torch.int64)

    def sample(self) -> Batch:
        pick = _randint(len(self.centres), (self.patches,), self.generator).to(self.centres.device)
        corners = (self.centres[pick] - self.half).clamp(min=torch.zeros_like(self.high),
                                                         max=self.high)
        idx = corners[:, None, None, None, :] + self.offsets  # (B, s, s, s, 3)
        fixed = self.fixed[idx[..., 0], idx[..., 1], idx[..., 2]]
        return Batch(fixed.unsqueeze(1), points=idx.to(self.fixed.dtype))


class RandomSampler:
    """``n`` random points in the foreground, each with a 2x2x2 one-voxel stencil.

    The similarity is global NCC over the samples.
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
        fixed = sample(self.fixed[None], points, matrix=self.norm)[0]
        return Batch(fixed.unsqueeze(1), points=points, use_local_ncc=False)
