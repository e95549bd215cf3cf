"""Group statistics: the GLM against scipy's t-test, FDR calibration under the null and power
with a planted effect, masked smoothing, per-structure volumes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage, stats

from nir.spatial.io import save_volume
from nir.stats.glm import cohens_d, fdr, fit_contrast
from nir.stats.tbm import smooth_in_mask, voxelwise_tbm
from nir.stats.volumes import jacobian_volumes, structure_tests
from nir.study.design import Design

SHAPE = (24, 28, 22)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _design(n_per_group: int, age: np.ndarray | None = None) -> Design:
    ids = tuple(f"s{i}" for i in range(2 * n_per_group))
    groups = tuple("a" if i < n_per_group else "b" for i in range(2 * n_per_group))
    return Design(ids, groups, ("a", "b"), {} if age is None else {"age": age})


def test_glm_without_covariates_is_student_t() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(10, 50))
    y[5:] += 0.8
    design = _design(5)
    test = fit_contrast(y, design.matrix(), np.array([0.0, 1.0]))
    expected = stats.ttest_ind(y[5:], y[:5])
    assert np.allclose(test.t, expected.statistic) and np.allclose(test.p, expected.pvalue)
    assert test.df == 8
    assert np.allclose(test.effect, y[5:].mean(0) - y[:5].mean(0))
    d = cohens_d(y, design.indicator)
    assert np.allclose(d, test.t * np.sqrt(1 / 5 + 1 / 5))


def test_glm_covariate_removes_a_confound() -> None:
    rng = np.random.default_rng(1)
    age = rng.uniform(60, 66, 12)
    age[6:] += 10  # the groups differ in age, and age drives y; the group itself does not
    y = (0.1 * age)[:, None] + rng.normal(scale=0.05, size=(12, 200))
    plain = fit_contrast(y, _design(6).matrix(), np.array([0.0, 1.0]))
    adjusted = fit_contrast(y, _design(6, age).matrix(), np.array([0.0, 1.0, 0.0]))
    assert (plain.p < 0.05).mean() > 0.9
    assert (adjusted.p < 0.05).mean() < 0.15


def _maps(rng: np.random.Generator, n: int, effect: np.ndarray | None = None) -> np.ndarray:
    maps = np.stack([ndimage.gaussian_filter(rng.normal(size=SHAPE), 1.5) for _ in range(n)])
    maps /= maps.std()
    if effect is not None:
        maps[n // 2:] += effect
    return maps


def test_fdr_on_null_maps_matches_the_nominal_rate() -> None:
    """40 null cohorts (6 + 6 smooth noise maps): BH at q=0.05 controls the family-wise rate
    under the complete null, so about 2 of 40 may show any discovery; 7 or more would happen
    with probability < 0.5 % if the rate were 5 %."""
    rng = np.random.default_rng(2)
    design = _design(6)
    with_discoveries = 0
    for _ in range(40):
        maps = _maps(rng, 12).reshape(12, -1)
        test = fit_contrast(maps, design.matrix(), np.array([0.0, 1.0]))
        with_discoveries += int(fdr(test.p, 0.05)[1].any())
    assert with_discoveries <= 6


def test_planted_effect_is_found_where_it_is(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    region = np.zeros(SHAPE, bool)
    region[8:14, 10:18, 8:13] = True
    logj = _maps(rng, 12, np.where(region, -2.0, 0.0)) * 0.05
    mask = np.ones(SHAPE, np.uint8)
    mask[:2] = 0
    mask_path = save_volume(mask, AFFINE, tmp_path / "mask.nii.gz")
    jacobians = [save_volume(np.exp(m), AFFINE, tmp_path / f"j{i}.nii.gz")
                 for i, m in enumerate(logj)]
    result = voxelwise_tbm(jacobians, mask_path, _design(6), fwhm_mm=2.0, q=0.05)
    significant = result.maps["significant"] > 0
    assert significant.sum() > 0.5 * region.sum()
    assert (significant & region).sum() > 0.8 * significant.sum()
    assert region[tuple(result.summary["peak_voxel"])]
    assert result.summary["peak_t"] < 0
    assert (result.maps["p"][mask == 0] == 1).all() and (result.maps["t"][mask == 0] == 0).all()


def test_smoothing_stays_inside_the_mask() -> None:
    data = np.full(SHAPE, 1.0)
    data[:, :14] = 100.0  # outside the mask: must not leak in
    mask = np.zeros(SHAPE, bool)
    mask[:, 14:] = True
    smoothed = smooth_in_mask(data, mask, 8.0, (2.0, 2.0, 2.0))
    assert np.allclose(smoothed[mask], 1.0) and (smoothed[~mask] == 0).all()


def test_structure_volumes_follow_the_jacobian(tmp_path: Path) -> None:
    labels = np.zeros(SHAPE, np.int32)
    labels[4:10] = 17
    labels[12:20] = 53
    labels_path = save_volume(labels, AFFINE, tmp_path / "labels.nii.gz")
    rng = np.random.default_rng(4)
    jacobians = []
    for i in range(8):
        detj = np.full(SHAPE, 1.0 + rng.normal(scale=0.02), dtype=np.float32)
        if i >= 4:
            detj[labels == 17] *= 0.85  # group b: 15 % smaller left hippocampus
        jacobians.append(save_volume(detj, AFFINE, tmp_path / f"j{i}.nii.gz"))
    design = _design(4)
    volumes = jacobian_volumes(labels_path, jacobians, design)
    first = volumes[(volumes["subject"] == "s0") & (volumes["label"] == 53)]["volume_mm3"]
    detj0 = float(nib.load(jacobians[0]).dataobj[0, 0, 0])
    assert float(first.iloc[0]) == pytest.approx(8 * 28 * 22 * 8.0 * detj0, rel=1e-4)
    tests = structure_tests(volumes, design).set_index("structure")
    left = tests.loc["Left-Hippocampus"]
    assert left["significant"] and left["percent_difference"] == pytest.approx(-15, abs=2)
    assert not tests.loc["Right-Hippocampus"]["significant"]
