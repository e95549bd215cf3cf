"""Fields on lattices: separable interpolation, regional evaluation and the velocity solve."""

from __future__ import annotations

import torch

from nir.engine.fields import NeuralField
from nir.engine.lattice import Lattice, interpolate_grid
from nir.engine.params import load_params
from nir.spatial.geometry import sample

LATTICE = Lattice((-1.0, -0.9, -1.1), 0.125, (17, 16, 18))


def _bent(params_mode: str, scale: float = 0.02, **overrides) -> NeuralField:
    params = load_params(mode=params_mode, fourier_sigma=1.0, **overrides)
    field = NeuralField(params, LATTICE, torch.Generator().manual_seed(3))
    with torch.no_grad():  # move the field off the identity, seeded
        for p in field.net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return field.requires_grad_(False)


def test_lattice_covers_its_box_with_a_node_to_spare() -> None:
    lattice = Lattice.covering(torch.tensor([-0.5, 0.0, 0.2]), torch.tensor([0.5, 0.3, 0.9]), 0.1)
    for a, axis in enumerate(lattice.axes()):
        assert axis[0] <= (-0.5, 0.0, 0.2)[a] - 0.1 + 1e-6
        assert axis[-1] >= (0.5, 0.3, 0.9)[a] + 0.1 - 1e-6


def test_separable_interpolation_equals_trilinear_sampling() -> None:
    g = torch.Generator().manual_seed(0)
    values = torch.randn(3, *LATTICE.shape, generator=g)
    axes = [torch.rand(n, generator=g) * 1.8 - 0.9 for n in (5, 6, 7)]
    weights = [LATTICE.weights(a, axis) for a, axis in enumerate(axes)]
    separable = interpolate_grid(values, weights)
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)
    reference = sample(values, points, padding_mode="border",
                       matrix=torch.as_tensor(LATTICE.norm_from_field, dtype=torch.float32))
    torch.testing.assert_close(separable, reference, atol=1e-5, rtol=1e-5)


def test_a_region_reproduces_the_whole_lattice_inside_it() -> None:
    displacement = _bent("displacement")
    region = LATTICE.region(torch.tensor([-0.3, -0.2, 0.0]), torch.tensor([0.2, 0.3, 0.5]), 2)
    whole = displacement.node_displacement()
    torch.testing.assert_close(displacement.node_displacement(region=region),
                               whole[(slice(None), *region)], atol=1e-5, rtol=1e-5)
    velocity = _bent("velocity")
    whole = velocity.node_displacement()
    part = velocity.node_displacement(region=region)
    inner = tuple(slice(2, r.stop - r.start - 2) for r in region)  # trajectories stay inside
    inside = whole[(slice(None), *region)][(slice(None), *inner)]
    assert float(whole.abs().max()) > 0.01  # the field moves for real
    torch.testing.assert_close(part[(slice(None), *inner)], inside, atol=1e-5, rtol=1e-4)


def test_one_midpoint_step_is_close_to_a_fine_rk4_solve() -> None:
    coarse = _bent("velocity", ode_method="midpoint", ode_steps=1).node_displacement()
    fine = _bent("velocity", ode_method="rk4", ode_steps=16).node_displacement()
    magnitude = float(fine.norm(dim=0).max())
    error = float((coarse - fine).norm(dim=0).max())
    assert magnitude > 0.05 * LATTICE.spacing
    assert error < 0.05 * magnitude, f"error {error:.2e} of {magnitude:.2e}"


def test_the_inverse_map_undoes_the_forward_map() -> None:
    field = _bent("velocity", ode_steps=8)
    x = torch.rand(200, 3, generator=torch.Generator().manual_seed(5)) - 0.5
    there = field(x)
    assert float((there - x).norm(dim=-1).max()) > 0.01
    back = field.deform_points(there, inverse=True)
    assert float((back - x).norm(dim=-1).max()) < 0.05 * float((there - x).norm(dim=-1).max())
