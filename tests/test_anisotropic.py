"""Millimetre parameters hold in mm along every axis of an anisotropic, oblique scan."""

from __future__ import annotations

import numpy as np
import torch

from nir.engine.params import load_params
from nir.engine.register import register
from nir.engine.samplers._base import same_extent, voxel_strides
from nir.engine.samplers.minipatch import MinipatchSampler
from nir.spatial.io import Volume

SHAPE = (44, 44, 15)  # 1 x 1 x 3 mm voxels: 44 x 44 x 45 mm
SPACING = (1.0, 1.0, 3.0)
AMPLITUDE_MM = 2.5


def _oblique_affine() -> np.ndarray:
    """1 x 1 x 3 mm voxels, rotated 20 degrees about z and 10 about x, centred on the origin."""
    a, b = np.deg2rad(20.0), np.deg2rad(10.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rx @ rz @ np.diag(SPACING)
    affine[:3, 3] = -affine[:3, :3] @ ((np.array(SHAPE) - 1) / 2.0)
    return affine


def _world_phantom(x: np.ndarray) -> np.ndarray:
    """A textured ellipsoid in world mm (..., 3), centred on the origin, about 36 mm across."""
    r2 = (x[..., 0] / 18.0) ** 2 + (x[..., 1] / 17.0) ** 2 + (x[..., 2] / 18.0) ** 2
    inside = 1.0 / (1.0 + np.exp((r2 - 1.0) * 12.0))
    k = 2 * np.pi / 14.0
    texture = 0.5 + 0.25 * np.sin(k * x[..., 0] + 0.5) * np.sin(k * x[..., 1]) \
        + 0.25 * np.cos(0.8 * k * x[..., 2] + 0.3 * k * x[..., 0])
    return (inside * (0.3 + texture)).astype(np.float32)


def _world_displacement(x: np.ndarray) -> np.ndarray:
    """A smooth world-mm displacement (..., 3), largest about AMPLITUDE_MM."""
    w = 2 * np.pi / 50.0
    u = np.stack([np.sin(w * x[..., 1]) * np.cos(w * x[..., 2]),
                  np.sin(w * x[..., 2] + 1.0) * np.cos(w * x[..., 0]),
                  np.sin(w * x[..., 0] + 2.0) * np.cos(w * x[..., 1])], axis=-1)
    return AMPLITUDE_MM * u


def test_windows_and_patches_span_the_same_mm_on_every_axis() -> None:
    assert same_extent(9, (2.0, 2.0, 3.0), odd=True) == (9, 9, 5)  # 18 x 18 x 15 mm
    assert same_extent(9, (4.0, 4.0, 4.0), odd=True) == (9, 9, 9)
    assert same_extent(16, (1.0, 1.0, 3.0), minimum=2) == (16, 16, 5)
    # a tie goes to the smaller count: 8 samples of mm make a 7-sample window (round() took 9,
    # yet 5 for 6), 3.5 samples 3 (round() took 4)
    assert same_extent(9, (1.0, 1.0, 1.125), odd=True) == (9, 9, 7)
    assert same_extent(7, (1.0, 1.0, 2.0)) == (7, 7, 3)
    fixed = torch.rand(40, 40, 12)
    sampler = MinipatchSampler(fixed, fixed > 0.5, 3, same_extent(16, SPACING, minimum=2),
                               torch.Generator().manual_seed(0))
    assert sampler.sample().fixed.shape == (3, 1, 16, 16, 5)


def test_sample_steps_are_the_nearest_whole_voxels_with_ties_to_the_finer() -> None:
    assert voxel_strides(4.0, (1.0, 1.0, 3.0)) == (4, 4, 1)
    assert voxel_strides(2.5, (1.0, 1.0, 1.0)) == (2, 2, 2)
    assert voxel_strides(3.5, (1.0, 1.0, 1.0)) == (3, 3, 3)  # round() would take 4
    assert voxel_strides(1.0, (1.2, 2.5, 0.5)) == (1, 1, 2)


def test_known_deformation_is_recovered_on_an_oblique_1x1x3_mm_pair() -> None:
    affine = _oblique_affine()
    voxels = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    world = voxels @ affine[:3, :3].T + affine[:3, 3]
    u = _world_displacement(world)
    # fixed(x) = moving(x + u(x)) in world mm: the registration must return u (RAS mm)
    fixed = _world_phantom(world + u)
    moving = _world_phantom(world)
    make = lambda a: Volume(torch.from_numpy(a), affine, None)  # noqa: E731
    params = load_params(coarse_iterations=80, iterations=30, downsize_spacing_mm=3.0,
                         fourier_sigma=1.0, ode_steps=2)
    result = register(make(fixed), make(moving), params, seed=0, progress=False)
    inside = fixed > 0.3
    error = np.linalg.norm(result.displacement.numpy() - u, axis=-1)[inside]
    initial = np.linalg.norm(u, axis=-1)[inside]
    assert np.median(initial) > 1.5
    # measured 0.67 mm; bound: a third of the largest voxel side, under half the initial
    assert np.median(error) < 1.0, f"median endpoint error {np.median(error):.3f} mm"
