"""Coordinate encodings: feature grids read their nodes trilinearly; Fourier features are seeded."""

from __future__ import annotations

import pytest
import torch

from nir.encoding import FourierFeatures, GridFeatures
from nir.errors import NirInputError
from nir.fields import NeuralField
from nir.params import load_params


def test_feature_grid_reproduces_a_linear_function_of_the_coordinates() -> None:
    grid = GridFeatures((0.5, 0.25), n_features=3)
    assert [tuple(g.shape) for g in grid.grids] == [(3, 5, 5, 5), (3, 9, 9, 9)]
    weights = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0], [2.0, 0.0, -1.0]])
    with torch.no_grad():
        for g in grid.grids:
            n = g.shape[1]
            axis = torch.linspace(-1.0, 1.0, n)
            nodes = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)
            g.copy_((nodes @ weights.T).permute(3, 0, 1, 2))
    x = torch.rand(500, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    out = grid(x)
    assert out.shape == (500, 6)
    expected = x @ weights.T  # trilinear interpolation is exact for linear functions
    torch.testing.assert_close(out[:, :3], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 3:], expected, atol=1e-5, rtol=0)


def test_feature_grid_field_takes_its_spacing_in_mm() -> None:
    params = load_params(grid_spacings_mm=[20.0, 5.0], grid_features=2)
    field = NeuralField(params, torch.Generator().manual_seed(0), fine=True, radius_mm=100.0)
    assert isinstance(field.encoding, GridFeatures)
    # 200 mm across the field cube: 20 mm -> 11 nodes, 5 mm -> 41 nodes per axis
    assert [g.shape[1] for g in field.encoding.grids] == [11, 41]
    assert field.encoding.out_features == 4
    coarse = NeuralField(params, torch.Generator().manual_seed(0))
    assert isinstance(coarse.encoding, FourierFeatures)
    x = torch.rand(10, 3)
    torch.testing.assert_close(field(x), x)  # zero head: every field starts at the identity


@pytest.mark.parametrize(("override", "problem"), [
    ({"fine_encoding": "hash"}, "fine_encoding must be one of"),
    ({"fine_sampler": "random"}, "fine_sampler must be one of"),
    ({"grid_spacings_mm": [8.0, -1.0]}, "grid_spacings_mm must be"),
    ({"grid_spacings_mm": 4.0}, "grid_spacings_mm must be list"),
])
def test_bad_encoding_parameters_are_named(override: dict, problem: str) -> None:
    with pytest.raises(NirInputError, match=problem):
        load_params(**override)
