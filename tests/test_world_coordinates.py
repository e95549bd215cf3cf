"""Oblique affines and a known translation in mm: the saved warp lands a landmark in place."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import yaml

from nir.cli import main
from nir.spatial.displacement import load_warp

SIZE = 36
SHIFT_MM = np.array([3.0, -2.0, 2.5])
LANDMARK = np.array([4.0, -3.0, 5.0])


def _oblique(angle_deg: float, spacing: float, origin: np.ndarray) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rot = rot @ np.array([[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)],
                          [0, np.sin(a / 2), np.cos(a / 2)]])
    affine = np.eye(4)
    affine[:3, :3] = rot * spacing
    affine[:3, 3] = origin
    return affine


def _world_phantom(world: np.ndarray) -> np.ndarray:
    r = np.linalg.norm(world / np.array([20.0, 17.0, 18.0]), axis=-1)
    inside = 1.0 / (1.0 + np.exp((r - 0.9) * 20))
    k = 2 * np.pi / 14.0
    texture = 0.6 + 0.2 * np.sin(k * world[..., 0]) * np.cos(k * world[..., 1]) \
        + 0.2 * np.sin(k * world[..., 2] + 0.4 * k * world[..., 0])
    return (inside * texture).astype(np.float32)


def _sample_world(affine: np.ndarray, fn) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(SIZE)] * 3, indexing="ij"), -1).astype(float)
    return fn(idx @ affine[:3, :3].T + affine[:3, 3])


def test_translation_in_mm_round_trips_through_apply(tmp_path, write_nifti) -> None:
    fixed_aff = _oblique(20.0, 1.25, np.array([-22.0, -20.0, -21.0]))
    moving_aff = _oblique(-10.0, 1.4, np.array([-24.0, -25.0, -22.0]))
    fixed = write_nifti("fixed.nii.gz", _sample_world(fixed_aff, _world_phantom), fixed_aff)
    moving = write_nifti("moving.nii.gz", _sample_world(
        moving_aff, lambda w: _world_phantom(w - SHIFT_MM)), moving_aff)
    blob = lambda w: np.exp(-np.sum((w - LANDMARK - SHIFT_MM) ** 2, -1) / 8.0)  # noqa: E731
    landmark = write_nifti("landmark.nii.gz",
                           _sample_world(moving_aff, blob).astype(np.float32), moving_aff)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"coarse_iterations": 120, "iterations": 60,
                                      "downsize_spacing_mm": 2.5}))
    prefix = tmp_path / "out"
    assert main(["register", "--fixed", str(fixed), "--moving", str(moving), "--out",
                 str(prefix), "--config", str(params), "--device", "cpu", "--quiet"]) == 0
    disp, warp_affine, _ = load_warp(f"{prefix}_warp.nii.gz")
    assert np.allclose(warp_affine, fixed_aff)
    centre = disp[SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4]
    assert np.allclose(centre.reshape(-1, 3).median(0).values.numpy(), SHIFT_MM, atol=0.5)
    out = tmp_path / "landmark_in_fixed.nii.gz"
    assert main(["apply", "--warp", f"{prefix}_warp.nii.gz", "--moving", str(landmark),
                 "--reference", str(fixed), "--out", str(out)]) == 0
    img = nib.load(str(out))
    assert np.allclose(img.affine, fixed_aff)
    w = np.asarray(img.dataobj, dtype=np.float64)
    w = np.where(w > 0.2 * w.max(), w, 0)
    idx = np.stack(np.meshgrid(*[np.arange(SIZE)] * 3, indexing="ij"), -1).reshape(-1, 3)
    centroid_vox = (idx * w.reshape(-1, 1)).sum(0) / w.sum()
    centroid = fixed_aff[:3, :3] @ centroid_vox + fixed_aff[:3, 3]
    assert np.linalg.norm(centroid - LANDMARK) < 0.5, f"landmark off by {centroid - LANDMARK} mm"
