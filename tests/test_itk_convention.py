"""The ITK/ANTs warp convention, checked against references worked out here by hand.

ANTs: a displacement field NIfTI (I, J, K, 1, 3), intent vector, lives on the fixed grid;
voxel x holds d in mm in the LPS frame, and the fixed point x (LPS) maps to the moving point
x + d.  Resampling a moving image M through it gives out(x) = M(x + d(x)), so a feature at
moving point p appears at the fixed point x with x + d(x) = p.  Every expected position below
is computed from the affines with numpy alone, not with the package's conversion helpers.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import torch

from nir.cli import main
from nir.spatial.displacement import save_warp

FLIP = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS
FIXED_SIZE, MOVING_SIZE = 24, 32
BLOB_RAS = np.array([4.0, -6.0, 3.0])  # feature centre in the moving image, world RAS mm
BLOB_SIGMA_MM = 3.0


def _fixed_affine() -> np.ndarray:
    """An oblique, permuted, flipped 2 mm grid: i -> posterior, j -> superior, k -> left,
    then turned 12 degrees about the S axis; centred near the world origin."""
    axes = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) * 2.0
    a = np.deg2rad(12.0)
    turn = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0, 0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = turn @ axes
    affine[:3, 3] = -affine[:3, :3] @ np.full(3, (FIXED_SIZE - 1) / 2) + [0.5, -1.0, 1.5]
    return affine


def _moving_affine() -> np.ndarray:
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    affine[:3, 3] = -1.5 * (MOVING_SIZE - 1) / 2 + np.array([1.0, -2.0, 0.5])
    return affine


def _world(affine: np.ndarray, size: int) -> np.ndarray:
    """World RAS mm of every voxel centre, (size, size, size, 3)."""
    idx = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1).astype(float)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def _apply(tmp_path, write_nifti, warp_lps: np.ndarray) -> np.ndarray:
    """Write ``warp_lps`` (I, J, K, 3) by hand as an ANTs warp, run ``nir apply`` on a blob
    image, and return the world RAS centroid of the result."""
    fixed_affine, moving_affine = _fixed_affine(), _moving_affine()
    warp = nib.Nifti1Image(warp_lps[:, :, :, None, :].astype(np.float32), fixed_affine)
    warp.header.set_intent("vector")
    nib.save(warp, str(tmp_path / "warp.nii.gz"))
    reference = write_nifti("fixed.nii.gz", np.ones((FIXED_SIZE,) * 3, np.float32), fixed_affine)
    distance2 = np.sum((_world(moving_affine, MOVING_SIZE) - BLOB_RAS) ** 2, -1)
    blob = np.exp(-distance2 / (2 * BLOB_SIGMA_MM**2)).astype(np.float32)
    moving = write_nifti("moving.nii.gz", blob, moving_affine)
    out = tmp_path / "out.nii.gz"
    assert main(["apply", "--warp", str(tmp_path / "warp.nii.gz"), "--moving", str(moving),
                 "--reference", str(reference), "--out", str(out)]) == 0
    img = nib.load(str(out))
    assert np.allclose(img.affine, fixed_affine, atol=1e-5)
    w = np.asarray(img.dataobj, dtype=np.float64)
    assert w.max() > 0.5  # the blob is inside the output field of view
    centroid = (_world(fixed_affine, FIXED_SIZE) * w[..., None]).sum((0, 1, 2)) / w.sum()
    return centroid


def test_constant_lps_warp_moves_a_feature_the_ants_way(tmp_path, write_nifti) -> None:
    d_lps = np.array([5.0, -3.0, 7.0])  # mm: 5 towards L, 3 towards A, 7 towards S
    warp = np.broadcast_to(d_lps, (FIXED_SIZE,) * 3 + (3,))
    centroid = _apply(tmp_path, write_nifti, warp)
    # x + d = p in LPS  =>  x_RAS = p_RAS - FLIP d_LPS = p - (-5, 3, 7)
    expected = BLOB_RAS - FLIP @ d_lps
    assert np.allclose(expected, [9.0, -9.0, -4.0])
    error = np.linalg.norm(centroid - expected)
    assert error < 0.1, f"feature at {centroid}, expected {expected} RAS mm ({error:.2f} mm off)"


def test_position_dependent_lps_warp_is_read_at_the_fixed_point(tmp_path, write_nifti) -> None:
    """d(x) = s (x - c) in LPS: only d read at the fixed point x (not at x + d, nor inverted)
    puts the feature at x = (p + s c) / (1 + s)."""
    s, centre_ras = 0.25, np.array([2.0, 1.0, -1.0])
    x_lps = _world(_fixed_affine(), FIXED_SIZE) @ FLIP.T
    warp = s * (x_lps - FLIP @ centre_ras)
    centroid = _apply(tmp_path, write_nifti, warp)
    expected = FLIP @ ((FLIP @ BLOB_RAS + s * (FLIP @ centre_ras)) / (1 + s))
    error = np.linalg.norm(centroid - expected)
    assert error < 0.1, f"feature at {centroid}, expected {expected} RAS mm ({error:.2f} mm off)"


def test_saved_warp_holds_lps_vectors_on_the_fixed_grid(tmp_path) -> None:
    """save_warp: RAS (1, 2, 3) mm is stored as LPS (-1, -2, 3), 5-D, intent vector."""
    affine = _fixed_affine()
    ras = torch.zeros(FIXED_SIZE, FIXED_SIZE, FIXED_SIZE, 3)
    ras[...] = torch.tensor([1.0, 2.0, 3.0])
    ras[3, 4, 5] = torch.tensor([-4.0, 0.5, -2.0])
    save_warp(ras, affine, tmp_path / "w.nii.gz")
    img = nib.load(str(tmp_path / "w.nii.gz"))
    data = np.asarray(img.dataobj)
    assert data.shape == (FIXED_SIZE,) * 3 + (1, 3)
    assert img.header.get_intent()[0] == "vector"
    assert np.allclose(img.affine, affine, atol=1e-5)
    assert np.allclose(data[0, 0, 0, 0], [-1.0, -2.0, 3.0])
    assert np.allclose(data[3, 4, 5, 0], [4.0, -0.5, -2.0])
