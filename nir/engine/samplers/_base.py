"""What every coordinate sampler shares: the batch it returns, its protocol and its setup.

Each sampler returns a :class:`Batch` of fixed intensities on grid-structured samples, so that
local NCC can be computed on them: either one axis-aligned grid given by its three axes
(``axes``, the downsize sampler; the field is then read there separably) or a batch of small
grids given point by point (``points``, mini-patches and random stencils).  Positions are
fixed voxel coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

from nir.engine.params import RegistrationParams


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


def randint(high: int, size: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, high, size, generator=generator)


def box_slices(box: tuple[slice, slice, slice] | None,
                shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    if box is None:
        return tuple(slice(0, n) for n in shape)  # type: ignore[return-value]
    return box


@dataclass(frozen=True)
class SamplerSetup:
    """What a phase offers its sampler: the fixed image (blurred for a strided grid), the
    foreground, the box samples lie in, the voxel steps of a strided grid and the NCC window
    in samples, with the registration parameters and the seeded generator."""

    fixed: torch.Tensor  # (I, J, K)
    mask: torch.Tensor  # (I, J, K) bool: the fixed foreground
    spacing: tuple[float, float, float]  # mm per voxel of the fixed grid
    box: tuple[slice, slice, slice]
    strides: tuple[int, int, int]  # voxels between samples of a strided grid
    window: tuple[int, int, int]  # local NCC window side along each axis, samples
    fraction: float  # of a strided grid per batch
    params: RegistrationParams
    generator: torch.Generator


class Sampler(Protocol):
    """Where the similarity is measured at each iteration: a new :class:`Batch` per call.

    A sampler class also says whether it samples a strided grid (``strided``: the phase then
    sets its voxel steps from its spacing in mm and blurs the fixed and moving images by a
    fraction of it) and builds itself from a :class:`SamplerSetup` (``from_setup``).
    """

    strided: ClassVar[bool]

    @classmethod
    def from_setup(cls, setup: SamplerSetup) -> Sampler:
        """The sampler of a phase."""

    def sample(self) -> Batch:
        """The next batch."""


def nearest_int(x: float) -> int:
    """``x`` rounded to the nearest integer, a tie to the smaller one (``round`` would take the
    even one: 2.5 -> 2 but 3.5 -> 4)."""
    return math.ceil(x - 0.5)


def voxel_strides(spacing_mm: float, voxel_mm: tuple[float, ...]) -> tuple[int, int, int]:
    """Whole-voxel steps nearest ``spacing_mm`` along each axis (at least 1; a tie takes the
    finer step)."""
    return tuple(max(1, nearest_int(spacing_mm / s)) for s in voxel_mm)  # type: ignore[return-value]


def same_extent(count: int, steps_mm: tuple[float, ...], odd: bool = False,
                minimum: int = 1) -> tuple[int, int, int]:
    """``count`` samples along the most finely sampled axis, and as many along each other axis
    as span the same millimetres (the nearest count, to an odd number with ``odd``, a tie to
    the smaller; at least ``minimum``).

    This keeps windows and patches cubes in mm on anisotropic scans (1x1x3 mm: a 9-sample
    window is 9 x 9 x 3 samples); on isotropic sampling it is ``count`` along every axis.
    """
    finest = min(steps_mm)
    out = []
    for step in steps_mm:
        n = count * finest / step
        n = 2 * nearest_int((n - 1) / 2) + 1 if odd else nearest_int(n)
        out.append(max(minimum, n))
    return tuple(out)  # type: ignore[return-value]
