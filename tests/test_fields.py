"""The lattice shortcut NF1 takes in velocity mode agrees with the exact rk4 solve."""

from __future__ import annotations

import torch

from nir.fields import NeuralField
from nir.geometry import identity_grid
from nir.params import load_params


def test_lattice_velocity_matches_the_exact_solve() -> None:
    field = NeuralField(load_params(mode="velocity", fourier_sigma=1.0),
                        torch.Generator().manual_seed(3))
    with torch.no_grad():  # move the field off the identity, seeded
        for p in field.net.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    field.requires_grad_(False)
    x = identity_grid((33, 33, 33))  # 1/16 field unit apart; field cube == lattice box
    exact = field(x)
    assert (exact - x).norm(dim=-1).max() > 0.02  # the test deforms for real
    shortcut = field.integrate_on_lattice(x, torch.eye(4))
    assert (shortcut - exact).norm(dim=-1).max() < 2e-3  # measured 9e-4
