"""The mini-patch sampler: several small full-resolution cubes on the fixed foreground."""

from __future__ import annotations

import torch

from nir.engine.samplers._base import Batch, SamplerSetup, randint, same_extent
from nir.spatial.geometry import voxel_indices


class MinipatchSampler:
    """``patches`` boxes of ``size`` voxels (one side, or one per axis) at full resolution,
    centred on foreground voxels."""

    strided = False

    @classmethod
    def from_setup(cls, setup: SamplerSetup) -> MinipatchSampler:
        """``params.patches`` cubes of ``params.patch_size`` voxels along the finest axis (the
        same mm along the others)."""
        return cls(setup.fixed, setup.mask, setup.params.patches,
                   same_extent(setup.params.patch_size, setup.spacing, minimum=2),
                   setup.generator)

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
        pick = randint(len(self.centres), (self.patches,), self.generator).to(self.centres.device)
        corners = (self.centres[pick] - self.half).clamp(min=torch.zeros_like(self.high),
                                                         max=self.high)
        idx = corners[:, None, None, None, :] + self.offsets  # (B, s, s, s, 3)
        fixed = self.fixed[idx[..., 0], idx[..., 1], idx[..., 2]]
        return Batch(fixed.unsqueeze(1), points=idx.to(self.fixed.dtype))
