"""The downsize sampler: a strided grid of the fixed image with a random offset."""

from __future__ import annotations

import torch

from nir.engine.samplers._base import Batch, SamplerSetup, box_slices, randint


class DownsizeSampler:
    """A strided grid (every ``strides[a]``-th voxel along axis a) over ``box``, with a new
    random integer offset each call.

    With ``fraction`` < 1 each call returns a random sub-box of the strided grid holding about
    that fraction of its samples (at least ``min_count`` per axis): a smaller batch, over which
    the field need only be evaluated locally.
    """

    strided = True

    @classmethod
    def from_setup(cls, setup: SamplerSetup) -> DownsizeSampler:
        """Every ``setup.strides`` voxels over the box; sub-boxes of ``setup.fraction``, at
        least two NCC windows wide."""
        return cls(setup.fixed, setup.strides, setup.generator, setup.box, setup.fraction,
                   2 * max(setup.window))

    def __init__(self, fixed: torch.Tensor, strides: tuple[int, int, int],
                 generator: torch.Generator, box: tuple[slice, slice, slice] | None = None,
                 fraction: float = 1.0, min_count: int = 1) -> None:
        self.fixed = fixed
        self.strides = tuple(int(s) for s in strides)
        self.generator = generator
        self.box = box_slices(box, tuple(fixed.shape))
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
        offsets = tuple(int(randint(s, (1,), self.generator)) for s in self.strides)
        starts = [int(randint(c - n + 1, (1,), self.generator)) for c, n in
                  zip(self.counts, self.sizes, strict=True)]
        crop = tuple(slice(st, st + n) for st, n in zip(starts, self.sizes, strict=True))
        slices = tuple(slice(full.start + full.step * c.start,
                             full.start + full.step * (c.stop - 1) + 1, full.step)
                       for full, c in zip(self.full_grid(offsets)[0], crop, strict=True))
        axes = [torch.arange(sl.start, sl.stop, sl.step, device=self.fixed.device,
                             dtype=self.fixed.dtype) for sl in slices]
        return Batch(self.fixed[slices][None, None], axes=axes, key=offsets, crop=crop,
                     step=self.strides)
