"""What ``nir register`` leaves on disk: the brain folding is counted in, a stale summary, the
inverse warp, 16-bit warps, and SIGTERM (a SLURM time limit) mid-fit and mid-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import map_coordinates

from nir.cli import main
from nir.engine import pair
from nir.engine.params import RegistrationParams
from nir.engine.register import RegistrationResult
from nir.spatial.displacement import load_warp, save_warp
from nir.spatial.io import load_volume
from nir.spatial.overlap import dice_per_label, folding_percent, mean_dice
from tests.interrupt import SLOW_WRITE, terminate
from tests.phantom import phantom, smooth_displacement, voxel_grid

SHAPE = (12, 12, 12)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _oblique(spacing: float, shape: tuple[int, ...]) -> np.ndarray:
    """A rotated (about every axis) grid centred near the origin."""
    angles = np.deg2rad([12.0, -8.0, 20.0])
    rotation = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        turn = np.eye(3)
        i, j = [a for a in range(3) if a != axis]
        turn[[i, i, j, j], [i, j, i, j]] = c, -s, s, c
        rotation = rotation @ turn
    affine = np.eye(4)
    affine[:3, :3] = rotation * spacing
    affine[:3, 3] = -affine[:3, :3] @ (np.array(shape) - 1) / 2
    return affine


@pytest.fixture
def small_pair(write_nifti) -> dict[str, Path]:
    """A 12^3 pair at 2 mm whose image is non-zero everywhere; labels cover one block."""
    rng = np.random.default_rng(0)
    image = (1.0 + rng.random(SHAPE)).astype(np.float32)
    labels = np.zeros(SHAPE, np.int16)
    labels[2:6, 2:10, 2:10] = 17
    return {"fixed": write_nifti("fixed.nii.gz", image, AFFINE),
            "moving": write_nifti("moving.nii.gz", image[::-1].copy(), AFFINE),
            "labels": write_nifti("labels.nii.gz", labels, AFFINE)}


def _folding_displacement() -> torch.Tensor:
    """Folds the slab 3 <= i < 8 (det J = -2 there): half inside the labelled block."""
    disp = torch.zeros((*SHAPE, 3))
    x_mm = 2.0 * torch.arange(SHAPE[0], dtype=torch.float32)
    slab = (x_mm >= 6.0) & (x_mm < 16.0)
    disp[..., 0] = torch.where(slab, -3.0 * (x_mm - 6.0), -30.0 * (x_mm >= 16.0))[:, None, None]
    return disp


def _fake_register(displacement: torch.Tensor):
    def fake(*_args, **_kwargs) -> RegistrationResult:
        return RegistrationResult(displacement=displacement.clone())
    return fake


def test_summary_and_evaluation_count_folding_in_the_same_brain(small_pair, tmp_path,
                                                                monkeypatch) -> None:
    monkeypatch.setattr(pair, "register", _fake_register(_folding_displacement()))
    prefix = tmp_path / "out" / "pair"
    assert main(["register", "--fixed", str(small_pair["fixed"]), "--moving",
                 str(small_pair["moving"]), "--moving-labels", str(small_pair["labels"]),
                 "--fixed-labels", str(small_pair["labels"]), "--out", str(prefix),
                 "--quiet"]) == 0
    summary = json.loads(Path(f"{prefix}_summary.json").read_text())
    assert summary["folding_region"] == "fixed labels > 0"
    out = tmp_path / "metrics.csv"
    assert main(["evaluate", "--fixed-labels", str(small_pair["labels"]), "--moving-labels",
                 str(small_pair["labels"]), "--warped-labels", f"{prefix}_warped_labels.nii.gz",
                 "--jacobian", f"{prefix}_jacobian.nii.gz", "--pair", "a_to_b", "--method",
                 "nir", "--labels-set", "17", "--out", str(out)]) == 0
    rows = pd.read_csv(out).set_index(["stage", "metric"])["value"]
    evaluated = rows["after", "folding_percent"]
    detj = load_volume(f"{prefix}_jacobian.nii.gz").data
    whole_image = folding_percent(detj, load_volume(small_pair["fixed"]).data > 0)
    assert evaluated > 10.0 and abs(evaluated - whole_image) > 5.0  # the two regions differ
    assert summary["folding_percent"] == pytest.approx(evaluated, abs=1e-5)


def _no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_a_failed_rerun_removes_the_stale_summary(small_pair, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pair, "register", _fake_register(torch.zeros((*SHAPE, 3))))
    prefix = tmp_path / "out" / "pair"
    args = (small_pair["fixed"], small_pair["moving"], prefix, RegistrationParams())
    first = pair.register_files(*args, progress=False)
    old = {kind: Path(path).read_bytes() for kind, path in first["outputs"].items()
           if kind != "summary"}

    def disk_full(*_args, **_kwargs):
        raise OSError("No space left on device")

    def killed(*_args, **_kwargs):
        raise RuntimeError("killed mid-fit")

    monkeypatch.setattr(pair, "jacobian_determinant_map", disk_full)  # fails mid-write
    with pytest.raises(OSError, match="No space left"):
        pair.register_files(*args, progress=False)
    assert not Path(first["outputs"]["summary"]).exists()  # no stale "complete" marker
    assert {kind: Path(first["outputs"][kind]).read_bytes() for kind in old} == old
    assert _no_temporaries(prefix.parent)

    Path(first["outputs"]["summary"]).write_text("{}")  # a stale marker again
    monkeypatch.setattr(pair, "register", killed)
    with pytest.raises(RuntimeError, match="mid-fit"):
        pair.register_files(*args, progress=False)
    assert not Path(first["outputs"]["summary"]).exists()


# --- SIGTERM: a scheduler's time limit -------------------------------------------------------

FIT_HOOK = textwrap.dedent("""
    from nir.engine import pair
    real_register = pair.register

    def register(*args, **kwargs):
        marker.touch()
        return real_register(*args, **kwargs)

    pair.register = register
""")


@pytest.mark.parametrize("stage", ["fit", "write"])
def test_sigterm_removes_temporaries_and_exits_with_one_line(stage, small_pair,
                                                             tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "pair_summary.json").write_text("{}")  # left by an earlier run
    iterations = "100000" if stage == "fit" else "2"
    argv = ["register", "--fixed", str(small_pair["fixed"]), "--moving",
            str(small_pair["moving"]), "--moving-labels", str(small_pair["labels"]),
            "--out", str(out / "pair"), "--sampler", "downsize", "--iterations", iterations,
            "--threads", "1", "--device", "cpu", "--quiet"]
    status, err, present = terminate(tmp_path, FIT_HOOK if stage == "fit" else SLOW_WRITE,
                                     argv, out)
    if stage == "write":  # the signal came while a temporary output was on disk
        assert [name for name in present if name.startswith(".pair_")], present
    assert status == 1
    assert err.strip().splitlines() == ["nir register: error: terminated by SIGTERM; "
                                        "temporary files removed"]
    assert list(out.iterdir()) == []  # no temporary, no partial output, no stale summary


def test_sigterm_stops_ants_and_removes_its_folder(small_pair, tmp_path) -> None:
    fake_python = tmp_path / "python"  # stands in for the antspyx interpreter: runs, and waits
    pid_file = tmp_path / "ants.pid"
    fake_python.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    fake_python.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "nir", "ants-syn", "--fixed", str(small_pair["fixed"]),
         "--moving", str(small_pair["moving"]), "--out", str(out / "pair"),
         "--ants-python", str(fake_python)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert [p.name for p in out.iterdir() if p.name.startswith(".ants-")]
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 1
    assert err.strip().splitlines() == ["nir ants-syn: error: terminated by SIGTERM; "
                                        "temporary files removed"]
    assert list(out.iterdir()) == []
    with pytest.raises(ProcessLookupError):  # ANTs was stopped with the job
        os.kill(int(pid_file.read_text()), 0)


# --- the inverse warp and 16-bit storage -----------------------------------------------------

def _sample(field: torch.Tensor, affine: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Trilinear samples of a (I, J, K, 3) field at world points (n, 3)."""
    vox = (np.linalg.inv(affine) @ np.c_[world, np.ones(len(world))].T)[:3]
    return np.stack([map_coordinates(field[..., c].numpy(), vox, order=1, mode="nearest")
                     for c in range(3)], axis=-1)


def test_cli_inverse_warp_undoes_the_forward_warp(tmp_path, write_nifti) -> None:
    """phi^-1(phi(x)) = x within 0.15 mm (median; a tenth of a voxel) and 0.6 mm (99th
    percentile) in the phantom, composing the two written files in world mm on an oblique
    1.5 mm grid, and with under 0.6 x the median residual of the first-order inverse -d
    (measured: 0.09 and 0.34 mm, -d 0.21 mm, for a median deformation of 1.7 mm)."""
    size, affine = 32, _oblique(1.5, (32, 32, 32))
    grid = voxel_grid(size)
    moving = phantom(grid, size)
    fixed = phantom(grid + smooth_displacement(grid, size, 2.0), size)
    config = tmp_path / "params.yaml"
    config.write_text("coarse_iterations: 60\niterations: 20\ndownsize_spacing_mm: 3.0\n")
    prefix = tmp_path / "out" / "pair"
    assert main(["register", "--fixed", str(write_nifti("f.nii.gz", fixed, affine)),
                 "--moving", str(write_nifti("m.nii.gz", moving, affine)), "--out", str(prefix),
                 "--mode", "velocity", "--inverse", "--config", str(config), "--device", "cpu",
                 "--quiet"]) == 0
    forward, warp_affine, _ = load_warp(f"{prefix}_warp.nii.gz")
    backward, inverse_affine, _ = load_warp(f"{prefix}_inverse_warp.nii.gz")
    np.testing.assert_allclose(inverse_affine, affine, atol=1e-5)
    np.testing.assert_allclose(warp_affine, affine, atol=1e-5)
    inside = fixed.ravel() > 0.3
    x = (affine @ np.c_[grid.reshape(-1, 3), np.ones(grid[..., 0].size)].T)[:3].T[inside]
    y = x + forward.reshape(-1, 3).numpy()[inside]
    residual = np.linalg.norm(y + _sample(backward, affine, y) - x, axis=-1)
    first_order = np.linalg.norm(y - _sample(forward, affine, y) - x, axis=-1)
    assert np.median(np.linalg.norm(y - x, axis=-1)) > 1.0  # a real deformation
    assert np.median(residual) < 0.15, np.median(residual)
    assert np.percentile(residual, 99) < 0.6, np.percentile(residual, 99)
    assert np.median(residual) < 0.6 * np.median(first_order)


def test_int16_warp_is_within_half_a_step_and_keeps_the_dice(tmp_path, write_nifti) -> None:
    """A 16-bit warp (int16 x scl_slope) of a smooth 12 mm field: every component within
    max|d|/65534 mm (< 0.0002 mm here) of the float32 one, and labels resampled through it by
    ``nir apply`` have the same Dice (within 0.001) as through the float32 warp."""
    size, affine = 40, _oblique(1.2, (40, 40, 40))
    grid = voxel_grid(size)
    disp = torch.from_numpy(smooth_displacement(grid, size, 10.0) * 1.2)  # up to ~12 mm
    labels = (1 + (grid[..., 0] // 5) % 3 + 3 * ((grid[..., 2] // 8) % 2)).astype(np.int16)
    moving = write_nifti("labels.nii.gz", labels, affine)
    reference = write_nifti("ref.nii.gz", np.ones(labels.shape, np.float32), affine)
    warps = {dtype: save_warp(disp, affine, tmp_path / f"{dtype}.nii.gz", dtype=dtype)
             for dtype in ("float32", "int16")}
    stored = {dtype: load_warp(path)[0] for dtype, path in warps.items()}
    step = float(nib.load(warps["int16"]).dataobj.slope)
    assert nib.load(warps["int16"]).get_data_dtype() == np.int16
    assert nib.load(warps["int16"]).header.get_intent()[0] == "vector"
    error = (stored["int16"] - stored["float32"]).abs().max().item()
    assert error <= step / 2 * 1.0001 and step / 2 <= disp.abs().max().item() / 65534 * 1.0001
    assert error > 0  # really quantised
    dice = {}
    for dtype, path in warps.items():
        out = tmp_path / f"warped_{dtype}.nii.gz"
        assert main(["apply", "--warp", str(path), "--moving", str(moving), "--reference",
                     str(reference), "--out", str(out), "--labels"]) == 0
        warped = np.asarray(nib.load(out).dataobj)
        dice[dtype] = mean_dice(dice_per_label(warped, labels, range(1, 7)))
    assert dice["float32"] < 0.9  # the field moves the labels
    assert abs(dice["int16"] - dice["float32"]) <= 0.001, dice
