"""The random sampler (the paper's baseline): random foreground points with one-voxel
stencils, compared by global NCC."""

from __future__ import annotations

import torch

from nir.engine.samplers._base import Batch, SamplerSetup, randint
from nir.spatial.geometry import sample, voxel_indices, voxel_to_norm


class RandomSampler:
    """``n`` random points in the foreground, each with a 2x2x2 one-voxel stencil.

    The similarity is global NCC over the samples.
    """

    strided = False

    @classmethod
    def from_setup(cls, setup: SamplerSetup) -> RandomSampler:
        """``params.random_points`` stencils in the fixed foreground."""
        return cls(setup.fixed, setup.mask, setup.params.random_points, setup.generator)

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
        pick = randint(len(self.centres), (self.n,), self.generator).to(device)
        jitter = (torch.rand(self.n, 3, generator=self.generator) - 0.5).to(device)
        base = (self.centres[pick] + jitter).clamp(min=0).minimum(self.high)
        points = base[:, None, None, None, :] + self.stencil  # (n, 2, 2, 2, 3)
        fixed = sample(self.fixed[None], points, matrix=self.norm)[0]
        return Batch(fixed.unsqueeze(1), points=points, use_local_ncc=False)
