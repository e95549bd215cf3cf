"""Coordinate encodings: lattice-aligned feature grids read their nodes trilinearly, on the
whole lattice or a region of it; Fourier features are seeded."""

from __future__ import annotations

import pytest
import torch

from nir.engine.encoding import FourierFeatures, GridFeatures
from nir.engine.fields import NeuralField
from nir.engine.lattice import Lattice
from nir.engine.params import load_params
from nir.errors import NirInputError

SHAPE = (9, 7, 10)


def _linear_grid(grid: GridFeatures, weights: torch.Tensor) -> None:
    """Set every level to a linear function of the lattice node index."""
    with torch.no_grad():
        for level, g in enumerate(grid.grids):
            index = torch.stack(torch.meshgrid(*[torch.arange(n) * 2.0**level
                                                 for n in g.shape[1:]], indexing="ij"), -1)
            g.copy_((index @ weights.T).permute(3, 0, 1, 2))


def test_feature_grid_levels_are_coarser_lattices_read_trilinearly() -> None:
    grid = GridFeatures(SHAPE, levels=3, n_features=2, generator=torch.Generator().manual_seed(0))
    assert [tuple(g.shape[1:]) for g in grid.grids] == [(9, 7, 10), (5, 4, 6), (3, 3, 4)]
    weights = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
    _linear_grid(grid, weights)
    out = grid()
    assert out.shape == (6, *SHAPE)
    index = torch.stack(torch.meshgrid(*[torch.arange(float(n)) for n in SHAPE],
                                       indexing="ij"), -1)
    expected = (index @ weights.T).permute(3, 0, 1, 2)  # trilinear is exact for linear maps
    for level in range(3):
        torch.testing.assert_close(out[2 * level:2 * level + 2], expected, atol=1e-4, rtol=0)


def test_feature_grid_region_is_the_slice_of_the_whole() -> None:
    grid = GridFeatures(SHAPE, levels=3, n_features=3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for g in grid.grids:
            g.normal_(generator=torch.Generator().manual_seed(g.numel()))
    region = (slice(3, 8), slice(1, 4), slice(5, 10))
    torch.testing.assert_close(grid(region), grid()[(slice(None), *region)])


def test_fields_start_at_the_identity_with_the_chosen_encoding() -> None:
    params = load_params(grid_levels=2, grid_features=2)
    lattice = Lattice((-1.0, -1.0, -1.0), 0.25, (9, 9, 9))
    fine = NeuralField(params, lattice, torch.Generator().manual_seed(0), fine=True)
    coarse = NeuralField(params, lattice, torch.Generator().manual_seed(0))
    assert isinstance(fine.encoding, GridFeatures) and fine.encoding.out_features == 4
    assert isinstance(coarse.encoding, FourierFeatures)
    x = torch.rand(10, 3) * 2 - 1
    torch.testing.assert_close(fine(x), x)
    torch.testing.assert_close(coarse(x), x)


@pytest.mark.parametrize(("override", "problem"), [
    ({"fine_encoding": "hash"}, "fine_encoding must be one of"),
    ({"fine_sampler": "spiral"}, "fine_sampler must be one of"),
    ({"grid_levels": 0}, "grid_levels and grid_features must be"),
    ({"fine_lattice_mm": -1.0}, "lattice_mm and fine_lattice_mm must be"),
])
def test_bad_encoding_parameters_are_named(override: dict, problem: str) -> None:
    with pytest.raises(NirInputError, match=problem):
        load_params(**override)
