"""The output writers' fast paths against straightforward references.

det J (slab-wise, entry by entry), moving coordinates (separable) and the label vote (uniform-cell
shortcut, chunked) must give the numbers the plain whole-volume formulas give.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from nir.spatial import geometry, label_interpolation
from nir.spatial.geometry import apply_matrix, voxel_indices, voxel_to_norm
from nir.spatial.jacobian import jacobian_determinant_map
from nir.spatial.label_interpolation import sample_labels
from nir.spatial.warp import moving_coordinates

PERMUTED = np.array([[-1.0, 0, 0, 80], [0, 0, 1, -127], [0, -1, 0, 97], [0, 0, 0, 1]])  # cohort's


def _oblique(rng: np.random.Generator, spacing: list[float]) -> np.ndarray:
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = rotation * spacing
    affine[:3, 3] = rng.normal(0, 20, 3)
    return affine


def _reference_detj(disp: torch.Tensor, affine: np.ndarray) -> torch.Tensor:
    dvox = torch.stack(torch.gradient(disp, dim=(0, 1, 2)), dim=-1)
    inv = torch.as_tensor(np.linalg.inv(affine[:3, :3]), dtype=disp.dtype)
    jac = dvox @ inv + torch.eye(3, dtype=disp.dtype)
    return torch.linalg.det(jac)


def _reference_coords(disp: torch.Tensor, grid_affine: np.ndarray, moving_shape: tuple,
                      moving_affine: np.ndarray) -> torch.Tensor:
    world = apply_matrix(grid_affine, voxel_indices(disp.shape[:3])) + disp
    return apply_matrix(voxel_to_norm(moving_shape) @ np.linalg.inv(moving_affine), world)


@pytest.mark.parametrize("slab_voxels", [40, 100, 1 << 18])  # slabs of 1, 2 and all 7 planes
def test_jacobian_map_matches_the_gradient_reference(monkeypatch, slab_voxels):
    monkeypatch.setattr(geometry, "SLAB_VOXELS", slab_voxels)
    rng = np.random.default_rng(0)
    disp = torch.from_numpy(rng.normal(0, 0.8, (7, 6, 7, 3)))
    oblique = _oblique(rng, [0.9, 1.3, 1.1])
    torch.testing.assert_close(jacobian_determinant_map(disp, oblique),
                               _reference_detj(disp, oblique), rtol=1e-12, atol=1e-12)
    disp = disp.float()
    torch.testing.assert_close(jacobian_determinant_map(disp, PERMUTED),
                               _reference_detj(disp, PERMUTED), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("slab_voxels", [40, 1 << 18])
def test_moving_coordinates_match_the_matrix_reference(monkeypatch, slab_voxels):
    monkeypatch.setattr(geometry, "SLAB_VOXELS", slab_voxels)
    rng = np.random.default_rng(1)
    disp = torch.from_numpy(rng.normal(0, 2.0, (5, 6, 7, 3)).astype(np.float32))
    fixed, moving = _oblique(rng, [1.0, 1.2, 0.9]), _oblique(rng, [1.1, 0.8, 1.3])
    torch.testing.assert_close(moving_coordinates(disp, fixed, (8, 9, 6), moving),
                               _reference_coords(disp, fixed, (8, 9, 6), moving),
                               rtol=0, atol=1e-6)
    assert torch.equal(moving_coordinates(disp, PERMUTED, (9, 7, 5), PERMUTED),
                       _reference_coords(disp, PERMUTED, (9, 7, 5), PERMUTED))


def _reference_vote(labels: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Per point: summed trilinear weight of each corner's label over the 8 corners (outside
    votes 0), the first corner with the largest sum wins."""
    shape = np.array(labels.shape)
    vox = (points.astype(np.float64) + 1) * (shape - 1) / 2
    base = np.floor(vox).astype(np.int64)
    frac = vox - base
    corner_labels, corner_weights = [], []
    for offset in itertools.product((0, 1), repeat=3):
        idx = base + offset
        inside = ((idx >= 0) & (idx < shape)).all(axis=1)
        value = labels[tuple(np.clip(idx, 0, shape - 1).T)]
        corner_labels.append(np.where(inside, value, 0))
        corner_weights.append(np.prod(np.where(offset, frac, 1 - frac), axis=1))
    lab, weight = np.stack(corner_labels, axis=1), np.stack(corner_weights, axis=1)
    score = ((lab[:, :, None] == lab[:, None, :]) * weight[:, None, :]).sum(axis=2)
    return lab[np.arange(len(lab)), score.argmax(axis=1)]


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_label_vote_matches_brute_force_inside_on_ties_and_outside(monkeypatch, dtype):
    monkeypatch.setattr(label_interpolation, "CHUNK", 64)
    rng = np.random.default_rng(2)
    shape = (9, 5, 17)  # n - 1 powers of two: quarter-voxel points are exact in float32
    blocks = rng.integers(0, 4, (5, 3, 9))
    labels = blocks.repeat(2, 0).repeat(2, 1).repeat(2, 2)[:9, :5, :17]
    labels[rng.random(shape) < 0.05] = 7  # isolated voxels, some on the border
    labels[:, :, 0] = 5                   # a label filling one border face
    quarter = np.stack([rng.integers(-6, 4 * n + 2, 3000) / 4 for n in shape], axis=1)
    points = np.concatenate([
        rng.uniform(-1.4, 1.4, (3000, 3)),           # inside and just outside
        quarter * 2 / (np.array(shape) - 1) - 1,     # exact ties between labels
        np.repeat([[5.0, 0.0, 0.0], [0.0, -3.0, 0.5]], 100, axis=0),  # far outside
    ]).astype(np.float32)
    out = sample_labels(torch.from_numpy(labels).to(dtype), torch.from_numpy(points))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), _reference_vote(labels, points))
    lead = sample_labels(torch.from_numpy(labels), torch.from_numpy(points).reshape(2, -1, 3))
    np.testing.assert_array_equal(lead.reshape(-1).numpy(), out.numpy())
