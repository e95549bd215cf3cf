"""Loss and Jacobian building blocks against hand-worked cases."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nir.jacobian import jacobian_determinant_map
from nir.losses import (
    box_mean,
    det3,
    diffusion_energy,
    folding_penalty,
    jacobian_columns,
    local_ncc,
)


def test_separable_box_mean_equals_cube_mean() -> None:
    x = torch.rand(2, 5, 12, 13, 14, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(box_mean(x, 5), F.avg_pool3d(x, 5, stride=1), atol=1e-6)


def test_local_ncc_is_zero_for_affine_intensity_change_and_high_for_noise() -> None:
    g = torch.Generator().manual_seed(1)
    img = torch.rand(1, 1, 16, 16, 16, generator=g)
    assert float(local_ncc(img, 3.0 * img + 0.5, 5)) < 1e-3
    assert float(local_ncc(img, torch.rand(1, 1, 16, 16, 16, generator=g), 5)) > 0.8


def test_sampled_jacobian_of_a_linear_map_is_its_determinant() -> None:
    a = torch.tensor([[1.2, 0.1, 0.0], [0.0, 0.9, 0.2], [0.1, 0.0, 1.1]])
    grid = torch.stack(torch.meshgrid(*[torch.arange(6.0)] * 3, indexing="ij"), -1) * 0.5
    phi = (grid @ a.T)[None]
    det = det3(*jacobian_columns(phi, torch.tensor([0.5, 0.5, 0.5])))
    assert torch.allclose(det, torch.linalg.det(a).expand_as(det), atol=1e-5)
    flipped = phi.clone()
    flipped[..., 0] = -flipped[..., 0]
    penalty = folding_penalty(det3(*jacobian_columns(flipped, torch.tensor([0.5, 0.5, 0.5]))))
    assert abs(float(penalty) - float(torch.linalg.det(a))) < 1e-4


def test_world_jacobian_honours_the_affine() -> None:
    affine = np.diag([2.0, 1.0, 0.5, 1.0])
    idx = torch.stack(torch.meshgrid(*[torch.arange(8.0)] * 3, indexing="ij"), -1)
    world = idx * torch.tensor([2.0, 1.0, 0.5])
    disp = world * 0.1  # x -> 1.1 x in world mm: det J = 1.1^3
    det = jacobian_determinant_map(disp, affine)
    assert torch.allclose(det, torch.full_like(det, 1.1**3), atol=1e-5)


def test_diffusion_energy_is_the_squared_displacement_gradient() -> None:
    axes = [torch.arange(6, dtype=torch.float32) * 0.5] * 3
    x = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)[None]
    step = torch.full((3,), 0.5)
    assert float(diffusion_energy(*jacobian_columns(x, step))) == 0.0  # identity, or a shift
    assert float(diffusion_energy(*jacobian_columns(x + 3.0, step))) == 0.0
    gradient = torch.tensor([[0.1, 0.0, 0.2], [0.0, -0.1, 0.0], [0.3, 0.0, 0.0]])
    phi = x + x @ gradient.T  # u(x) = G x, so ||grad u||_F^2 = sum G^2 everywhere
    energy = float(diffusion_energy(*jacobian_columns(phi, step)))
    assert abs(energy - float((gradient**2).sum())) < 1e-5
