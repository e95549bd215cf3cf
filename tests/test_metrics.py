"""Metrics, label tables and ``nir evaluate`` on tiny synthetic volumes with known answers."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.distance import cdist

from nir import cli
from nir.errors import NirInputError
from nir.evaluation import metrics
from nir.evaluation.columns import COLUMNS
from nir.evaluation.labels import DEFAULT_STRUCTURES, MERGE_MAP, label_name, parse_label_set
from nir.spatial import overlap

SPACING = (1.0, 1.0, 2.5)


def _sphere(shape, centre_mm, radius_mm, spacing):
    grids = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing, strict=True)),
                        indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre_mm, strict=True)) <= radius_mm ** 2


def test_dice_of_two_half_overlapping_cubes():
    a = np.zeros((10, 10, 10), np.int64)
    b = np.zeros_like(a)
    a[2:6, 2:6, 2:6] = 1          # 64 voxels
    b[4:8, 2:6, 2:6] = 1          # 64 voxels, 2*4*4 = 32 shared -> Dice 64/128
    a[8:, 8:, 8:] = 3             # only in a -> Dice 0
    scores = overlap.dice_per_label(a, b, [1, 2, 3])
    assert scores[1] == pytest.approx(0.5)
    assert math.isnan(scores[2])  # absent from both
    assert scores[3] == 0.0
    assert overlap.mean_dice(scores) == pytest.approx(0.25)


def test_hd95_of_spheres_shifted_along_the_coarse_axis():
    shape = (40, 40, 40)
    a = _sphere(shape, (20, 20, 40), 12, SPACING)
    b = _sphere(shape, (20, 20, 45), 12, SPACING)  # 5 mm = 2 voxels along k
    assert metrics.hd95(a, b, SPACING) == pytest.approx(5.0, abs=SPACING[2] / 2)
    assert metrics.hd95(a, a, SPACING) == 0.0


def test_hd95_matches_brute_force_surface_distances():
    rng = np.random.default_rng(0)
    a = np.zeros((12, 14, 9), bool)
    b = np.zeros_like(a)
    a[2:7, 3:10, 1:6] = True
    b[4:11, 5:12, 3:9] = True
    a &= rng.random(a.shape) > 0.1
    spacing = (0.8, 1.0, 2.0)

    def surface(mask):
        inner = mask.copy()
        padded = np.pad(mask, 1)
        for axis in range(3):
            for step in (-1, 1):
                inner &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
        return np.argwhere(mask & ~inner) * spacing

    pa, pb = surface(a), surface(b)
    d = cdist(pa, pb)
    expected = np.percentile(np.concatenate([d.min(axis=1), d.min(axis=0)]), 95)
    assert metrics.hd95(a, b, spacing) == pytest.approx(expected)


def test_hd95_empty_mask_policy():
    empty = np.zeros((5, 5, 5), bool)
    full = empty.copy()
    full[1:4, 1:4, 1:4] = True
    assert math.isnan(metrics.hd95(empty, empty, (1, 1, 1)))
    assert metrics.hd95(full, empty, (1, 1, 1)) == math.inf
    assert overlap.mean_finite([1.0, math.inf, math.nan, 3.0]) == 2.0


def _blocky_labels(rng, shape, labels, blocks=14):
    """Random boxes of random labels over background 0, some reaching the volume border."""
    out = np.zeros(shape, np.int64)
    for _ in range(blocks):
        lo = rng.integers(0, shape, size=3)
        hi = np.minimum(lo + rng.integers(1, 6, size=3), shape)
        out[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = rng.choice(labels)
    out[0, :3, :2] = labels[0]   # on the border
    return out


def _brute_force_surface(mask, spacing):
    """Surface voxels (mm) of a mask: a face neighbour outside the mask or the volume."""
    padded = np.pad(mask, 1)
    inner = mask.copy()
    for axis in range(mask.ndim):
        for step in (-1, 1):
            inner &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return np.argwhere(mask & ~inner) * spacing


def test_dice_and_hd95_per_label_match_brute_force():
    rng = np.random.default_rng(3)
    shape, spacing = (13, 11, 9), (0.8, 1.0, 2.5)
    a = _blocky_labels(rng, shape, [1, 2, 5])
    b = _blocky_labels(rng, shape, [1, 2, 6])
    a[-2:, -2:, -2:] = 7          # far from label 7 in b: beyond the near-offset search
    b[:2, :2, :1] = 7
    labels = [0, 1, 2, 5, 6, 7, 9]  # 5 only in a, 6 only in b, 9 in neither
    dice = overlap.dice_per_label(a, torch.from_numpy(b), labels)
    hd = metrics.hd95_per_label(a, metrics.label_surfaces(b), labels, spacing)
    assert list(dice) == list(hd) == labels
    for label in labels:
        in_a, in_b = a == label, b == label
        if not (in_a.any() or in_b.any()):
            assert math.isnan(dice[label]) and math.isnan(hd[label])
            continue
        assert dice[label] == 2.0 * int((in_a & in_b).sum()) / (int(in_a.sum()) + int(in_b.sum()))
        if not (in_a.any() and in_b.any()):
            assert hd[label] == math.inf
            continue
        d = cdist(_brute_force_surface(in_a, spacing), _brute_force_surface(in_b, spacing))
        expected = np.percentile(np.concatenate([d.min(axis=1), d.min(axis=0)]), 95)
        assert hd[label] == pytest.approx(expected, rel=1e-12)
    assert hd[7] > metrics.NEAR_RADIUS_STEPS * max(spacing)


def test_hd95_is_exact_as_far_surface_voxels_reach_the_percentile():
    # B = A plus a far line of m voxels: the pooled distances are zeros and m far values, so
    # the 95th percentile moves from the near zeros onto the far values as m grows
    a = np.zeros((24, 24, 40), bool)
    a[2:8, 2:8, 2:8] = True
    for m in range(1, 31):
        b = a.copy()
        b[20, 20, 4:4 + m] = True
        d = cdist(_brute_force_surface(a, (1, 1, 1)), _brute_force_surface(b, (1, 1, 1)))
        expected = np.percentile(np.concatenate([d.min(axis=1), d.min(axis=0)]), 95)
        assert metrics.hd95(a, b, (1, 1, 1)) == pytest.approx(expected, rel=1e-12, abs=0)
    assert expected > metrics.NEAR_RADIUS_STEPS  # the far values were read in the end


def test_label_surfaces_know_the_present_labels():
    rng = np.random.default_rng(4)
    a = _blocky_labels(rng, (10, 12, 7), [3, 4, 40])
    surfaces = metrics.label_surfaces(a)
    assert surfaces.present().tolist() == np.unique(a).tolist()
    assert len(surfaces.points(99)) == 0
    inner = metrics.label_surfaces(np.ones((4, 4, 4), np.int64))
    assert len(inner.points(1)) == 4 ** 3 - 2 ** 3  # the border counts as outside


def test_jacobian_of_affine_displacement_is_det_a():
    A = np.array([[1.2, 0.1, 0.0], [0.05, 0.9, 0.2], [0.0, -0.1, 1.1]])
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=float) for n in (9, 10, 11)),
                                indexing="ij"), axis=-1)
    disp = grid @ (A - np.eye(3)).T + np.array([0.5, -1.0, 2.0])
    detj = metrics.jacobian_determinant(disp)
    assert detj.shape == (9, 10, 11)
    np.testing.assert_allclose(detj[1:-1, 1:-1, 1:-1], np.linalg.det(A), rtol=1e-10)


def test_identity_has_no_folding_and_zero_sdlogj():
    detj = metrics.jacobian_determinant(np.zeros((6, 7, 8, 3)))
    np.testing.assert_allclose(detj, 1.0)
    assert metrics.sdlogj(detj, detj > 0) == 0.0
    assert overlap.folding_percent(detj) == 0.0


def test_folding_percent_of_a_known_folded_slab():
    i = np.arange(32, dtype=float)
    # u_i = -3 (i - 10) on [10, 20]: central differences give det J < 0 on i = 10..20 (11 slices)
    g = np.where(i < 10, 0.0, np.where(i > 20, -30.0, -3.0 * (i - 10)))
    disp = np.zeros((32, 6, 5, 3))
    disp[..., 0] = g[:, None, None]
    detj = metrics.jacobian_determinant(disp)
    assert overlap.folding_percent(detj) == pytest.approx(100 * 11 / 32)
    mask = np.zeros(detj.shape, bool)
    mask[:16] = True  # folded slices 10..15 of 16
    assert overlap.folding_percent(detj, mask) == pytest.approx(100 * 6 / 16)


def test_sdlogj_definition_and_clipping():
    detj = np.ones((4, 4, 4))
    detj[:2] = math.e
    assert metrics.sdlogj(detj) == pytest.approx(0.5)  # log values 1 and 0, half each
    detj[0, 0, 0] = -1.0
    assert math.isfinite(metrics.sdlogj(detj))
    assert metrics.sdlogj(detj) > 0.5


def test_label_tables_and_merge_map():
    assert len(DEFAULT_STRUCTURES) == 32
    assert label_name(17) == "Left-Hippocampus" and label_name(53) == "Right-Hippocampus"
    assert MERGE_MAP["Left-Hippocampus"] == MERGE_MAP["Right-Hippocampus"] == "Hippocampus"
    assert MERGE_MAP["Brain-Stem"] == "Brain-Stem"
    assert label_name(9999) == "label-9999"
    assert parse_label_set("all", [0, 5, 3, 3]) == [3, 5]
    assert parse_label_set("17, 53", []) == [17, 53]
    with pytest.raises(NirInputError, match="--labels-set"):
        parse_label_set("hippocampus", [])


# --- nir evaluate -----------------------------------------------------------------------------

AFFINE = np.diag([*SPACING, 1.0])


def _save(array, path, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return path


@pytest.fixture()
def pair_files(tmp_path):
    fixed = np.zeros((16, 16, 8), np.int16)
    fixed[2:8, 2:8, 2:6] = 17
    fixed[8:14, 2:8, 2:6] = 53
    moving = np.zeros_like(fixed)
    moving[2:8, 5:11, 2:6] = 17   # shifted by 3 voxels: half overlap -> Dice 0.5
    moving[8:14, 2:8, 2:6] = 53   # identical -> Dice 1
    detj = np.ones(fixed.shape, np.float32)
    detj[2, 2, 2] = -0.5          # one folded voxel inside the fixed labels (288 voxels)
    summary = {"seconds": 12.5, "peak_rss_mb": 300.0, "device": "cpu"}
    (tmp_path / "s.json").write_text(json.dumps(summary))
    return {"fl": _save(fixed, tmp_path / "fl.nii.gz"), "ml": _save(moving, tmp_path / "ml.nii.gz"),
            "wl": _save(fixed, tmp_path / "wl.nii.gz"), "j": _save(detj, tmp_path / "j.nii.gz"),
            "s": tmp_path / "s.json", "dir": tmp_path}


def _run(monkeypatch, argv):
    monkeypatch.setattr(cli, "COMMANDS", ("evaluate",))
    return cli.main(["evaluate", *map(str, argv)])


def _base_args(f, out):
    return ["--fixed-labels", f["fl"], "--moving-labels", f["ml"], "--warped-labels", f["wl"],
            "--pair", "sub-01_to_sub-02", "--fixed", "sub-01", "--moving", "sub-02",
            "--labels-set", "17,53", "--out", out]


def test_evaluate_writes_documented_rows(pair_files, monkeypatch):
    out = pair_files["dir"] / "pair.csv"
    status = _run(monkeypatch, [*_base_args(pair_files, out), "--method", "nir",
                                "--jacobian", pair_files["j"], "--summary", pair_files["s"]])
    assert status == 0
    table = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert tuple(table.columns) == COLUMNS
    value = table.set_index(["stage", "structure", "metric"])["value"]
    assert value["before", "Left-Hippocampus", "dice"] == pytest.approx(0.5)
    assert value["before", "Right-Hippocampus", "dice"] == pytest.approx(1.0)
    assert value["before", "all", "mean_dice"] == pytest.approx(0.75)
    assert value["before", "Left-Hippocampus", "hd95"] == pytest.approx(3.0)
    assert value["after", "all", "mean_dice"] == pytest.approx(1.0)
    assert value["after", "all", "mean_hd95"] == 0.0
    assert value["after", "all", "folding_percent"] == pytest.approx(100 / 288, rel=1e-5)
    assert value["after", "all", "seconds"] == 12.5
    assert value["after", "all", "peak_rss_mb"] == 300.0
    assert value["after", "all", "peak_memory_mb"] == 300.0  # on the CPU: the peak RSS
    assert set(table["device"]) == {"cpu"}
    assert set(table["method"]) == {"nir"} and set(table["pair"]) == {"sub-01_to_sub-02"}
    assert set(table.loc[table["structure"] == "all", "label"]) == {-1}


def test_evaluate_counts_gpu_memory_for_a_cuda_run(pair_files, monkeypatch):
    summary = {"seconds": 3.0, "peak_rss_mb": 2100.0, "device": "cuda:0", "peak_device_mb": 812.5}
    pair_files["s"].write_text(json.dumps(summary))
    out = pair_files["dir"] / "pair.csv"
    assert _run(monkeypatch, [*_base_args(pair_files, out), "--method", "nir",
                              "--jacobian", pair_files["j"], "--summary", pair_files["s"]]) == 0
    value = pd.read_csv(out).set_index(["stage", "structure", "metric"])["value"]
    assert value["after", "all", "peak_memory_mb"] == 812.5
    assert value["after", "all", "peak_rss_mb"] == 2100.0


def test_evaluate_affine_needs_no_jacobian(pair_files, monkeypatch):
    out = pair_files["dir"] / "affine.csv"
    pair_files["wl"] = pair_files["ml"]
    assert _run(monkeypatch, [*_base_args(pair_files, out), "--method", "affine"]) == 0
    table = pd.read_csv(out, keep_default_na=False, na_values=[""])
    after = table[(table["stage"] == "after") & (table["structure"] == "all")]
    value = after.set_index("metric")["value"]
    assert value["folding_percent"] == 0.0 and value["sdlogj"] == 0.0
    assert value["mean_dice"] == pytest.approx(0.75)
    assert math.isnan(value["seconds"])
    assert table["device"].isna().all()  # no summary: empty device


def test_evaluate_requires_jacobian_for_deformable_method(pair_files, monkeypatch, capsys):
    out = pair_files["dir"] / "nir.csv"
    assert _run(monkeypatch, [*_base_args(pair_files, out), "--method", "nir"]) == 2
    assert "--jacobian" in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_rejects_mismatched_label_shapes(pair_files, monkeypatch, capsys):
    bad = _save(np.ones((16, 16, 9), np.int16), pair_files["dir"] / "warped_bad.nii.gz")
    pair_files["wl"] = bad
    out = pair_files["dir"] / "bad.csv"
    assert _run(monkeypatch, [*_base_args(pair_files, out), "--method", "affine"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "shape" in err
    assert not out.exists()
    assert not list(pair_files["dir"].glob(".bad*"))  # no temporary left behind
