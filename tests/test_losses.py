"""Loss and Jacobian building blocks against hand-worked cases and autograd."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nir.engine.losses import (
    box_sum,
    box_sum_adjoint,
    displacement_gradients,
    jacobian_terms,
    lattice_det,
    lattice_regularity,
    local_ncc,
)
from nir.spatial.jacobian import jacobian_determinant_map


def test_running_box_sum_equals_cube_sum() -> None:
    x = torch.rand(2, 5, 12, 13, 14, generator=torch.Generator().manual_seed(0))
    expected = F.avg_pool3d(x, 5, stride=1) * 125
    torch.testing.assert_close(box_sum(x, 5), expected, atol=1e-4, rtol=1e-5)


def test_box_sum_adjoint_is_its_transpose() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 2, 9, 10, 11, generator=g, dtype=torch.float64)
    y = torch.rand(1, 2, 5, 6, 7, generator=g, dtype=torch.float64)
    lhs = (box_sum(x, 5) * y).sum()
    rhs = (x * box_sum_adjoint(y, 5)).sum()
    assert abs(float(lhs - rhs)) < 1e-9 * float(lhs)


def test_local_ncc_is_zero_for_affine_intensity_change_and_high_for_noise() -> None:
    g = torch.Generator().manual_seed(1)
    img = torch.rand(1, 1, 16, 16, 16, generator=g)
    assert float(local_ncc(img, 3.0 * img + 0.5, 5)) < 1e-3
    assert float(local_ncc(img, torch.rand(1, 1, 16, 16, 16, generator=g), 5)) > 0.8


def test_local_ncc_gradient_is_the_analytic_one() -> None:
    g = torch.Generator().manual_seed(2)
    fixed = torch.rand(1, 1, 7, 8, 9, generator=g, dtype=torch.float64)
    warped = (0.6 * fixed + 0.4 * torch.rand(fixed.shape, generator=g, dtype=torch.float64))
    warped.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda w: local_ncc(fixed, w, 3), (warped,))


def test_lattice_jacobian_of_a_linear_map_is_its_determinant() -> None:
    a = torch.tensor([[1.2, 0.1, 0.0], [0.0, 0.9, 0.2], [0.1, 0.0, 1.1]])
    x = torch.stack(torch.meshgrid(*[torch.arange(6.0)] * 3, indexing="ij")) * 0.5
    u = torch.einsum("ij,jabc->iabc", a - torch.eye(3), x)  # phi(x) = A x
    det = lattice_det(u, 0.5)
    assert det.shape == (5, 5, 5)
    torch.testing.assert_close(det, torch.linalg.det(a).expand_as(det), atol=1e-5, rtol=0)
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0])) @ a
    flipped = torch.einsum("ij,jabc->iabc", flip - torch.eye(3), x)
    assert float(lattice_regularity(u, 0.5, folding=1.0)) == 0.0
    penalty = lattice_regularity(flipped, 0.5, folding=1.0)  # mean ReLU(-det J) = det A
    assert abs(float(penalty) - float(torch.linalg.det(a))) < 1e-4
    change = lattice_regularity(u, 0.5, folding=0.0, volume=1.0)  # mean |1 - det J|
    assert abs(float(change) - abs(1.0 - float(torch.linalg.det(a)))) < 1e-4


def test_world_jacobian_honours_the_affine() -> None:
    affine = np.diag([2.0, 1.0, 0.5, 1.0])
    idx = torch.stack(torch.meshgrid(*[torch.arange(8.0)] * 3, indexing="ij"), -1)
    world = idx * torch.tensor([2.0, 1.0, 0.5])
    disp = world * 0.1  # x -> 1.1 x in world mm: det J = 1.1^3
    det = jacobian_determinant_map(disp, affine)
    assert torch.allclose(det, torch.full_like(det, 1.1**3), atol=1e-5)


def test_diffusion_energy_is_the_squared_displacement_gradient() -> None:
    x = torch.stack(torch.meshgrid(*[torch.arange(6.0)] * 3, indexing="ij")) * 0.5
    energy = lambda u: float(lattice_regularity(u, 0.5, folding=0.0, smoothness=1.0))  # noqa: E731
    assert energy(torch.zeros_like(x)) == 0.0
    assert energy(torch.full_like(x, 3.0)) == 0.0
    gradient = torch.tensor([[0.1, 0.0, 0.2], [0.0, -0.1, 0.0], [0.3, 0.0, 0.0]])
    u = torch.einsum("ij,jabc->iabc", gradient, x)  # u(x) = G x: ||grad u||_F^2 = sum G^2
    assert abs(energy(u) - float((gradient**2).sum())) < 1e-5


def _regularity_by_autograd(u: torch.Tensor, spacing: float, folding: float, volume: float,
                            smoothness: float) -> torch.Tensor:
    """The regularity loss written with torch's own determinant, for autograd to differentiate."""
    d = displacement_gradients(u, spacing)
    jac = torch.stack(d, -1).movedim(0, -2) + torch.eye(3, dtype=u.dtype)  # (..., row, column)
    det = torch.linalg.det(jac)
    return (folding * torch.relu(-det).mean() + volume * (1 - det).abs().mean()
            + smoothness * sum((g * g).sum() for g in d) / det.numel())


def test_regularity_gradient_is_the_analytic_one() -> None:
    g = torch.Generator().manual_seed(3)
    u = (0.4 * torch.randn(3, 6, 7, 5, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert 0.05 < float((lattice_det(u.detach(), 0.5) <= 0).double().mean()) < 0.95
    for weights in [(10.0, 0.0, 0.4), (1.0, 2.0, 0.0), (0.0, 0.0, 1.0), (3.0, 1.0, 0.5)]:
        ours = lattice_regularity(u, 0.5, *weights)
        reference = _regularity_by_autograd(u, 0.5, *weights)
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(torch.autograd.grad(ours, u)[0],
                                   torch.autograd.grad(reference, u)[0], rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda w: lattice_regularity(w, 0.5, 10.0, 1.0, 0.4), (u,))


def test_sample_jacobian_penalty_matches_linalg_det_and_autograd() -> None:
    """The continuous field's folding penalty (the paper's L_jdet, mean ReLU(-det J), plus the
    volume and diffusion terms) at sampled coordinates: value and gradient against det J
    written with torch.linalg.det and differentiated by autograd, with a third of the samples
    folded."""
    g = torch.Generator().manual_seed(7)
    grads = [torch.randn(3, 40, 3, 2, generator=g, dtype=torch.float64) * 0.8
             for _ in range(3)]
    for weights in ((10.0, 0.0, 0.0), (1.0, 0.5, 0.0), (2.0, 0.0, 0.3)):
        ours = [d.clone().requires_grad_(True) for d in grads]
        loss, det = jacobian_terms(ours, *weights)
        loss.backward()
        refs = [d.clone().requires_grad_(True) for d in grads]
        # J[..., r, a] = delta_ra + du_r/dx_a
        jac = torch.stack([torch.stack([refs[a][r] for a in range(3)], -1) for r in range(3)],
                          -2) + torch.eye(3, dtype=torch.float64)
        det_ref = torch.linalg.det(jac)
        folding, volume, smoothness = weights
        ref = (folding * torch.relu(-det_ref).mean() + volume * (1 - det_ref).abs().mean()
               + smoothness * sum((d * d).sum() for d in refs) / det_ref.numel())
        ref.backward()
        assert 0.2 < float((det_ref < 0).double().mean()) < 0.6
        torch.testing.assert_close(det, det_ref.detach())
        torch.testing.assert_close(loss, ref.detach())
        for mine, theirs in zip(ours, refs, strict=True):
            torch.testing.assert_close(mine.grad, theirs.grad)
