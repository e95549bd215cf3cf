"""The fit's corner-table sampler agrees with torch's grid_sample in values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nir.engine.corner_table import CornerTable


def _grid_sample(volume: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Reference: zero-padded trilinear sampling at voxel (i, j, k) coords (3, N)."""
    size = torch.tensor(volume.shape, dtype=coords.dtype).view(3, 1)
    grid = (coords / (size - 1) * 2 - 1).flip(0).T.reshape(1, -1, 1, 1, 3)
    return F.grid_sample(volume[None, None], grid, align_corners=True).reshape(-1)


def test_values_and_gradients_match_grid_sample_inside_and_outside() -> None:
    g = torch.Generator().manual_seed(0)
    volume = torch.rand(9, 11, 13, generator=g)
    # inside, straddling each border, and far outside (value and gradient 0)
    coords = torch.rand(3, 4000, generator=g) * torch.tensor([14.0, 16.0, 18.0]).view(3, 1) - 2.5
    reference, ours = coords.clone().requires_grad_(), coords.clone().requires_grad_()
    expected = _grid_sample(volume, reference)
    got = CornerTable(volume)(ours)
    weights = torch.rand(4000, generator=g)
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(ours.grad, reference.grad, atol=1e-4)
    outside = ((coords <= -1) | (coords >= torch.tensor([9, 11, 13]).view(3, 1))).any(0)
    assert outside.sum() > 100 and (got[outside] == 0).all() and (ours.grad[:, outside] == 0).all()


def test_shape_is_kept_and_a_non_3d_volume_is_refused() -> None:
    table = CornerTable(torch.arange(27.0).reshape(3, 3, 3))
    coords = torch.full((3, 2, 5, 7), 1.0)
    assert table(coords).shape == (2, 5, 7)
    assert torch.allclose(table(coords), torch.full((2, 5, 7), 13.0))
    with pytest.raises(ValueError, match="3-D"):
        CornerTable(torch.zeros(2, 3, 3, 3))

