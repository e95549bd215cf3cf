"""Threshold-free cluster enhancement: a hand-computed example, nilearn's implementation on the
same maps, the permutation test of the TFCE against a refit and a transform per permutation,
and, through voxelwise_tbm, a planted effect found inside its blob and null cohorts without
discoveries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from nir.stats import permutation
from nir.stats.permutation import enhancing_processes, freedman_lane
from nir.stats.tbm import MaskSmoother, voxelwise_tbm
from nir.stats.tfce import Tfce
from tests.group_maps import jacobian_cohort, two_groups

SHAPE = (24, 28, 22)




def _noise(rng: np.random.Generator, n: int, sigma: float = 1.5) -> np.ndarray:
    maps = np.stack([ndimage.gaussian_filter(rng.normal(size=SHAPE), sigma) for _ in range(n)])
    return maps / maps.std()


def test_tfce_of_a_line_by_hand() -> None:
    """Five voxels in a row, t = 1, 2, 0, 0.5, -1 and dh = 0.5: at h = 0.5 the clusters are
    {1, 2} and {0.5} (and {-1} on the negative side), at h = 1 {1, 2}, at 1.5 and 2 {2}."""
    mask = np.ones((1, 1, 5), bool)
    t = np.array([1.0, 2.0, 0.0, 0.5, -1.0])
    got = Tfce(mask, step=0.5)(t)
    term = lambda extent, h: extent**0.5 * h**2 * 0.5  # noqa: E731
    expected = [term(2, 0.5) + term(2, 1.0),
                term(2, 0.5) + term(2, 1.0) + term(1, 1.5) + term(1, 2.0),
                0.0,
                term(1, 0.5),
                -(term(1, 0.5) + term(1, 1.0))]
    assert np.allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("sigma", [1.0, 2.5])
def test_tfce_equals_nilearns_on_the_same_map(sigma: float) -> None:
    """nilearn's calculate_tfce (what permuted_ols(tfce=True) uses: E 0.5, H 2, faces) on the
    same two-signed map, with holes in the mask and the same step: equal to 1e-10, once our
    factor dh (which nilearn leaves out) is divided away."""
    from nilearn.mass_univariate._utils import calculate_tfce

    rng = np.random.default_rng(int(10 * sigma))
    mask = rng.random(SHAPE) > 0.1
    mask[:2] = False
    t = ndimage.gaussian_filter(rng.normal(size=SHAPE), sigma)
    t = np.where(mask, t * 5.0 / np.abs(t[mask]).max(), 0.0)  # max |t| = 100 steps of 0.05
    ours = Tfce(mask, step=0.05)(t[mask]) / 0.05
    theirs = calculate_tfce(t[..., None].copy(), ndimage.generate_binary_structure(3, 1),
                            dh=0.05, two_sided_test=True)[..., 0]
    assert (ours > 0).sum() > 1000 and (ours < 0).sum() > 1000
    assert np.allclose(ours, theirs[mask], rtol=1e-10, atol=1e-9)


def test_tfce_permutation_p_values_match_a_refit_per_permutation() -> None:
    """freedman_lane(enhance=Tfce) against the textbook loop: refit each permuted data set,
    smooth its variance, TFCE the pseudo-t; the observed TFCE, the null maxima and both p."""
    rng = np.random.default_rng(5)
    mask = np.ones(SHAPE, bool)
    mask[:3] = False
    age = rng.uniform(55, 75, 12)
    X = two_groups(6, age).matrix()
    effect = np.zeros(SHAPE)
    effect[10:16, 10:18, 8:14] = 2.0
    y = (_noise(rng, 12) + np.where(np.arange(12)[:, None, None, None] >= 6, effect, 0.0)
         )[:, mask] + 0.03 * age[:, None]
    smooth = MaskSmoother(mask, 8.0, (2.0, 2.0, 2.0))
    tfce = Tfce(mask)
    result = freedman_lane(y, X, 1, 60, seed=3, smooth=smooth, enhance=tfce)
    Z = np.delete(X, 1, axis=1)
    fit = Z @ np.linalg.lstsq(Z, y, rcond=None)[0]
    scores = []
    for rows in result.permutations:
        y_star = (y - fit)[rows] + fit
        beta = np.linalg.lstsq(X, y_star, rcond=None)[0]
        variance = smooth(((y_star - X @ beta) ** 2).sum(0) / (12 - X.shape[1]))
        t = beta[1] / np.sqrt(variance * np.linalg.inv(X.T @ X)[1, 1])
        scores.append(tfce(t.astype(np.float32)))
    scores = np.abs(np.array(scores))
    assert np.allclose(np.abs(result.enhanced), scores[0], rtol=1e-3, atol=1e-3)
    assert np.allclose(result.null_max, scores.max(1), rtol=1e-3)
    bound = scores[0] * (1 - 1e-5)
    assert np.abs(result.p_fwe - (scores.max(1)[None, :] >= bound[:, None]).mean(1)).max() <= 1 / 60
    assert np.abs(result.p_uncorrected - (scores >= bound).mean(0)).mean() < 0.01
    assert result.p_fwe.min() == pytest.approx(1 / 60)  # the planted block wins every time




def test_tfce_in_forked_processes_gives_the_numbers_of_one(monkeypatch) -> None:
    """workers=3 over chunks of 7 permutations (more chunks than the queue holds, the last one
    short): the enhanced maps, null maxima and p values equal those of one process, bit for bit;
    where processes cannot be forked, one process does the work; workers < 1 is refused."""
    rng = np.random.default_rng(8)
    mask = np.ones(SHAPE, bool)
    X = two_groups(6, rng.uniform(55, 75, 12)).matrix()
    y = _noise(rng, 12)[:, mask]
    monkeypatch.setattr(permutation, "CHUNK_ELEMENTS", 7 * int(mask.sum()))
    one = freedman_lane(y, X, 1, 50, seed=4, enhance=Tfce(mask))
    three = freedman_lane(y, X, 1, 50, seed=4, enhance=Tfce(mask), workers=3)
    for name in ("enhanced", "null_max", "p_fwe", "p_uncorrected", "statistic"):
        assert np.array_equal(getattr(one, name), getattr(three, name)), name
    assert len(np.unique(one.null_max)) > 40  # 50 distinct maps, not one repeated
    assert enhancing_processes(3) == 3
    monkeypatch.setattr(permutation.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert enhancing_processes(3) == 1
    with pytest.raises(ValueError, match="workers must be >= 1"):
        enhancing_processes(0)


@pytest.mark.parametrize("seed", [20, 21, 22])
def test_tfce_finds_a_planted_effect_inside_it(tmp_path: Path, seed: int) -> None:
    """6 + 6 noise maps with an age effect everywhere and a loss in a ball of 4 voxels' radius
    (8 mm; its edge blurred by 1 voxel) in group b, about 3 noise SDs deep: TFCE (the default
    correction) finds voxels, more than half of them inside the ball, with the peak within
    5 mm of its centre."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(55, 75, 12)
    centre = np.array([12.0, 14.0, 11.0])
    ball = ((np.indices(SHAPE) - centre[:, None, None, None]) ** 2).sum(0) <= 4.0**2
    loss = 3.0 * ndimage.gaussian_filter(ball.astype(float), 1.0)
    logj = (0.05 * (_noise(rng, 12) - loss * (np.arange(12) >= 6)[:, None, None, None])
            + 0.004 * (age - age.mean())[:, None, None, None])
    mask = np.ones(SHAPE, bool)
    mask[:2] = False
    jacobians, mask_path = jacobian_cohort(tmp_path, logj, mask)
    result = voxelwise_tbm(jacobians, mask_path, two_groups(6, age), fwhm_mm=4.0, q=0.05,
                           permutations=200, seed=1)
    significant = result.maps["significant"] > 0
    summary = result.summary
    distance = np.linalg.norm(np.asarray(summary["peak_mm"]) - 2.0 * centre)
    print(f"{significant.sum()} significant, {(significant & ball).sum()} in the ball; peak "
          f"{distance:.1f} mm from its centre; {summary['correction']}")
    assert summary["correction_method"] == "tfce" and summary["tfce"]["E"] == 0.5
    assert significant.sum() >= 10
    assert (significant & ball).sum() > 0.5 * significant.sum()
    assert distance <= 5.0
    assert summary["peak_t"] < 0 and result.maps["tfce"][significant].max() < 0
    q = result.maps["q"]
    assert (q[significant] <= 0.05).all() and (q[~significant] > 0.05).all()
    assert np.abs(result.maps["tfce"][significant]).min() > summary["fwe_tfce_threshold"]


def test_tfce_on_null_cohorts_finds_nothing(tmp_path: Path) -> None:
    """20 null cohorts (6 + 6 smooth noise maps, an age effect everywhere, age in the model),
    TFCE with 100 permutations each: a discovery anywhere should occur in about 1 of 20 (4 or
    more: probability 1.6 % at a true 5 %); the FWE p of each cohort's peak is uniform, so
    about half of them are at most 0.5 (outside 4-16: probability 0.3 %), which a too
    conservative test would miss."""
    mask = np.ones(SHAPE, bool)
    mask[:2] = False
    smooth = MaskSmoother(mask, 12.0, (2.0, 2.0, 2.0))
    tfce = Tfce(mask)
    with_discoveries, peak_p = [], []
    for seed in range(20):
        rng = np.random.default_rng(200 + seed)
        age = rng.uniform(55, 75, 12)
        maps = _noise(rng, 12)[:, mask] + 0.05 * (age - age.mean())[:, None]
        result = freedman_lane(maps, two_groups(6, age).matrix(), 1, 100, seed=seed,
                               smooth=smooth, enhance=tfce)
        with_discoveries.append(int((result.p_fwe <= 0.05).sum()))
        peak_p.append(float(result.p_fwe.min()))
    print(f"significant voxels per null cohort: {with_discoveries}; peak FWE p {peak_p}")
    assert sum(c > 0 for c in with_discoveries) <= 3
    assert 4 <= sum(p <= 0.5 for p in peak_p) <= 16
