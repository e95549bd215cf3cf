"""Group statistics: the GLM against scipy's t-test, FDR calibration under the null and power
with a planted effect, masked smoothing, per-structure volumes; the Freedman-Lane max-T
permutation test (FWE) against a plain refit per permutation, its calibration under the null,
its handling of a confounding covariate, and its power with a planted effect."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import nibabel as nib
import numpy as np
import pytest
import yaml
from scipy import ndimage, stats

from nir.spatial.io import save_volume
from nir.stats.glm import cohens_d, fdr, fit_contrast
from nir.stats.permutation import draw_permutations, freedman_lane, fwe_threshold
from nir.stats.tbm import (
    EDGE_MM,
    FWHM_TO_SIGMA,
    MaskSmoother,
    smooth_in_mask,
    voxelwise_tbm,
)
from nir.stats.volumes import jacobian_volumes, structure_tests
from tests.group_maps import jacobian_cohort, two_groups

SHAPE = (24, 28, 22)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])




def test_glm_without_covariates_is_student_t() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(10, 50))
    y[5:] += 0.8
    design = two_groups(5)
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
    plain = fit_contrast(y, two_groups(6).matrix(), np.array([0.0, 1.0]))
    adjusted = fit_contrast(y, two_groups(6, age).matrix(), np.array([0.0, 1.0, 0.0]))
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
    design = two_groups(6)
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
    result = voxelwise_tbm(jacobians, mask_path, two_groups(6), fwhm_mm=2.0, q=0.05,
                           correction="fdr")
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
    design = two_groups(4)
    volumes = jacobian_volumes(labels_path, jacobians, design)
    first = volumes[(volumes["subject"] == "s0") & (volumes["label"] == 53)]["volume_mm3"]
    detj0 = float(nib.load(jacobians[0]).dataobj[0, 0, 0])
    assert float(first.iloc[0]) == pytest.approx(8 * 28 * 22 * 8.0 * detj0, rel=1e-4)
    tests = structure_tests(volumes, design).set_index("structure")
    left = tests.loc["Left-Hippocampus"]
    assert left["significant"] and left["percent_difference"] == pytest.approx(-15, abs=2)
    assert not tests.loc["Right-Hippocampus"]["significant"]


# --- permutation inference (FWE) -----------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def _age(rng: np.random.Generator, n: int = 12) -> np.ndarray:
    return rng.uniform(55, 75, n)


def _reference_freedman_lane(y: np.ndarray, X: np.ndarray, column: int,
                             permutations: np.ndarray, smooth=None) -> np.ndarray:
    """The textbook scheme, one full refit per permutation: y* = P r_Z + fit_Z."""
    Z = np.delete(X, column, axis=1)
    fit = Z @ np.linalg.lstsq(Z, y, rcond=None)[0]
    out = []
    for rows in permutations:
        y_star = (y - fit)[rows] + fit
        beta, *_ = np.linalg.lstsq(X, y_star, rcond=None)
        variance = ((y_star - X @ beta) ** 2).sum(0) / (len(y) - X.shape[1])
        if smooth is not None:
            variance = smooth(variance)
        out.append(beta[column] / np.sqrt(variance * np.linalg.inv(X.T @ X)[column, column]))
    return np.array(out)


@pytest.mark.parametrize("strategy", ["products", "direct"])
@pytest.mark.parametrize("variance_fwhm_mm", [0.0, 8.0])
def test_freedman_lane_matches_a_refit_per_permutation(strategy: str,
                                                       variance_fwhm_mm: float) -> None:
    rng = np.random.default_rng(5)
    mask = rng.random(SHAPE) > 0.2
    mask[:3] = False
    age = _age(rng)
    X = two_groups(6, age).matrix()
    y = _maps(rng, 12, 0.5).reshape(12, -1)[:, mask.ravel()] + 0.05 * age[:, None]
    smooth = MaskSmoother(mask, variance_fwhm_mm, (2.0, 2.0, 2.0)) if variance_fwhm_mm else None
    result = freedman_lane(y, X, 1, 300, seed=7, smooth=smooth, strategy=strategy)
    reference = np.abs(_reference_freedman_lane(y, X, 1, result.permutations, smooth))
    assert (result.permutations[0] == np.arange(12)).all()
    assert np.allclose(np.abs(result.statistic), reference[0], rtol=1e-5, atol=1e-5)
    assert np.allclose(result.null_max, reference.max(1), rtol=1e-5)
    bound = reference[0] * (1 - 1e-5)
    assert np.allclose(result.p_uncorrected, (reference >= bound).mean(0))
    assert np.allclose(result.p_fwe, (reference.max(1)[None, :] >= bound[:, None]).mean(1))
    if not variance_fwhm_mm:  # the identity's statistic is the parametric t
        t = fit_contrast(y, X, np.array([0.0, 1.0, 0.0])).t
        assert np.allclose(result.statistic, t, rtol=1e-5, atol=1e-5)


def test_mask_smoother_is_smooth_in_mask() -> None:
    rng = np.random.default_rng(6)
    mask = np.zeros(SHAPE, bool)
    mask[3:20, 2:28, 5:18] = rng.random((17, 26, 13)) > 0.1  # touches one face of the grid
    values = rng.normal(size=int(mask.sum()))
    volume = np.zeros(SHAPE)
    volume[mask] = values
    smoothed = MaskSmoother(mask, 12.0, (2.0, 2.5, 2.0))(values)
    # the normalised convolution on the whole, uncropped grid
    sigma = [12.0 * FWHM_TO_SIGMA / s for s in (2.0, 2.5, 2.0)]
    reference = (ndimage.gaussian_filter(volume, sigma)
                 / ndimage.gaussian_filter(mask.astype(np.float64), sigma))[mask]
    assert np.allclose(smoothed, reference, rtol=1e-12, atol=1e-12)
    assert np.array_equal(smooth_in_mask(volume, mask, 12.0, (2.0, 2.5, 2.0))[mask], smoothed)


def test_permutations_are_seeded_and_exhaustive_when_few() -> None:
    drawn = draw_permutations(12, 500, seed=3)
    assert drawn.shape == (500, 12) and (drawn[0] == np.arange(12)).all()
    assert (np.sort(drawn, axis=1) == np.arange(12)).all()
    assert (drawn == draw_permutations(12, 500, seed=3)).all()
    assert not (drawn == draw_permutations(12, 500, seed=4)).all()
    every = draw_permutations(5, 1000)
    assert len(every) == 120 and len({tuple(r) for r in every}) == 120
    assert (every[0] == np.arange(5)).all()


def test_fwe_threshold_is_where_the_fwe_p_crosses_the_level() -> None:
    null_max = np.random.default_rng(8).gamma(9.0, 0.5, 1000)
    threshold = fwe_threshold(null_max, 0.05)
    p = lambda value: (null_max >= value).mean()  # noqa: E731
    assert p(threshold) > 0.05 and p(np.nextafter(threshold, np.inf)) <= 0.05


def test_freedman_lane_keeps_a_confounding_covariate_out_of_the_group_test() -> None:
    """Age differs by group and drives y; the group itself does nothing. With age in the model
    no voxel is FWE-significant and the uncorrected p are calibrated. Checks that this data
    would fool a wrong scheme: without age every voxel is significant, and permuting the raw
    data (Manly's scheme, the age effect then left unexplained in every permutation) flags
    dozens of voxels."""
    rng = np.random.default_rng(1)
    age = rng.uniform(60, 66, 12)
    age[6:] += 10
    y = (0.1 * age)[:, None] + rng.normal(scale=0.05, size=(12, 4000))  # independent voxels
    X = two_groups(6, age).matrix()
    result = freedman_lane(y, X, 1, 500, seed=2)
    assert (result.p_fwe <= 0.05).sum() == 0
    assert 0.03 <= (result.p_uncorrected <= 0.05).mean() <= 0.07
    assert (freedman_lane(y, X[:, :2], 1, 500, seed=2).p_fwe <= 0.05).all()
    raw = np.abs(_raw_permutation(y, X, 1, result.permutations))
    assert ((raw.max(1)[None, :] >= raw[0][:, None]).mean(1) <= 0.05).sum() > 20


def _raw_permutation(y: np.ndarray, X: np.ndarray, column: int,
                     permutations: np.ndarray) -> np.ndarray:
    """Manly's scheme, the wrong one here: permute the data and refit the full model."""
    pinv = np.linalg.pinv(X)
    residual_forming = np.eye(len(y)) - X @ pinv
    out = []
    for rows in permutations:
        y_star = y[rows]
        variance = ((residual_forming @ y_star) ** 2).sum(0) / (len(y) - X.shape[1])
        out.append(pinv[column] @ y_star / np.sqrt(variance * (pinv[column] @ pinv[column])))
    return np.array(out)




def _blob(centre: tuple[float, float, float], fwhm_voxels: float) -> np.ndarray:
    grid = np.indices(SHAPE).astype(float)
    squared = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True))
    return np.exp(-4 * np.log(2) * squared / fwhm_voxels**2)


def test_fwe_finds_a_planted_effect_inside_its_blob(tmp_path: Path) -> None:
    """6 + 6 noise maps, age acting on every voxel (a nuisance covariate), and a smooth loss in
    a blob in group b: FWE finds voxels, nearly all inside the blob (where the planted effect is
    over a tenth of its peak), the peak among them."""
    rng = np.random.default_rng(9)
    age = _age(rng)
    blob = _blob((12.0, 14.0, 11.0), 5.0)
    logj = 0.05 * _maps(rng, 12, -3.0 * blob) + 0.004 * (age - age.mean())[:, None, None, None]
    mask = np.ones(SHAPE, bool)
    mask[:2] = False
    jacobians, mask_path = jacobian_cohort(tmp_path, logj, mask)
    result = voxelwise_tbm(jacobians, mask_path, two_groups(6, age), fwhm_mm=4.0, q=0.05,
                           correction="fwe", permutations=500, seed=1)
    significant = result.maps["significant"] > 0
    inside = blob > 0.1
    print(f"{significant.sum()} significant, {(significant & inside).sum()} inside; "
          f"{result.summary['correction']}, threshold {result.summary['fwe_t_threshold']}")
    assert significant.sum() >= 10
    assert (significant & inside).sum() > 0.9 * significant.sum()
    assert inside[tuple(result.summary["peak_voxel"])] and result.summary["peak_t"] < 0
    summary = result.summary
    assert summary["correction_method"] == "fwe" and summary["permutations"] == 500
    assert summary["variance_fwhm_mm"] == 12.0
    assert np.abs(result.maps["t"][significant]).min() > summary["fwe_t_threshold"]
    q = result.maps["q"]
    assert (q[significant] <= 0.05).all() and (q[~significant] > 0.05).all()
    assert (q >= result.maps["p"]).all() and q.min() >= 1 / 500
    assert (q[~mask] == 1).all() and (result.maps["t"][~mask] == 0).all()


def test_fwe_on_null_cohorts_holds_the_nominal_rate() -> None:
    """40 null cohorts (6 + 6 smooth noise maps, an age effect everywhere, the age covariate in
    the model), pseudo-t with the variance smoothed at 12 mm, 200 permutations each. Any
    FWE-significant voxel should occur in about 2 of 40 (7 or more: probability 0.3 % at a true
    5 %); the FWE p of each cohort's peak is uniform under the null, so about half of them are
    at most 0.5 (outside 12-28: probability 0.6 %), which a too conservative test would miss."""
    mask = np.ones(SHAPE, bool)
    mask[:2] = False
    smooth = MaskSmoother(mask, 12.0, (2.0, 2.0, 2.0))
    with_discoveries, peak_p = 0, []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        age = _age(rng)
        maps = _maps(rng, 12)[:, mask] + 0.05 * (age - age.mean())[:, None]
        result = freedman_lane(maps, two_groups(6, age).matrix(), 1, 200, seed=seed,
                               smooth=smooth)
        with_discoveries += int((result.p_fwe <= 0.05).any())
        peak_p.append(float(result.p_fwe.min()))
    print(f"cohorts with FWE discoveries: {with_discoveries} of 40; peak FWE p {peak_p}")
    assert with_discoveries <= 6
    assert 12 <= sum(p <= 0.5 for p in peak_p) <= 28


def test_same_seed_same_maps_and_fdr_keeps_the_parametric_maps(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    age = _age(rng)
    logj = 0.05 * _maps(rng, 12, -1.0 * _blob((12.0, 14.0, 11.0), 5.0))
    mask = np.ones(SHAPE, bool)
    mask[:, :3] = False
    jacobians, mask_path = jacobian_cohort(tmp_path, logj, mask)
    design = two_groups(6, age)
    first, again, other = (voxelwise_tbm(jacobians, mask_path, design, 4.0, permutations=200,
                                         seed=seed) for seed in (3, 3, 4))
    assert first.summary["correction_method"] == "tfce"  # the default
    for name in ("t", "p", "q", "significant", "effect", "tfce"):
        assert np.array_equal(first.maps[name], again.maps[name]), name
    assert first.summary == again.summary
    assert not np.array_equal(first.maps["p"], other.maps["p"])

    parametric = voxelwise_tbm(jacobians, mask_path, design, 4.0, 0.05, correction="fdr")
    inner = ndimage.binary_erosion(mask, iterations=round(EDGE_MM / 2.0))
    y = np.stack([smooth_in_mask(np.log(np.clip(np.exp(m).astype(np.float32), 1e-3, None)),
                                 inner, 4.0, (2.0, 2.0, 2.0)).astype(np.float32)[inner]
                  for m in logj])
    test = fit_contrast(y, design.matrix(), np.array([0.0, 1.0, 0.0]))
    adjusted, significant = fdr(test.p, 0.05)
    for name, expected in (("t", test.t), ("p", test.p), ("q", adjusted),
                           ("significant", significant), ("effect", test.effect)):
        assert np.array_equal(parametric.maps[name][inner],
                              np.asarray(expected).astype(np.float32)), name
    assert parametric.summary["correction"].startswith("Benjamini-Hochberg")
    assert "permutations" not in parametric.summary and "tfce" not in parametric.maps
    assert np.array_equal(parametric.maps["effect"], first.maps["effect"])
    with pytest.raises(ValueError, match="correction"):
        voxelwise_tbm(jacobians, mask_path, design, 4.0, correction="bonferroni")


def test_the_workflow_passes_the_tbm_correction_keys(tmp_path: Path, monkeypatch) -> None:
    """The schema's defaults and bounds for the new keys, the rule's params and the script's
    call: each key reaches voxelwise_tbm (run through the script with a stand-in for the
    object Snakemake injects)."""
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    tbm = schema["properties"]["tbm"]["properties"]
    assert tbm["correction"]["default"] == "tfce"
    assert tbm["correction"]["enum"] == ["tfce", "fwe", "fdr"]
    assert tbm["permutations"]["default"] == 1000 and tbm["variance_fwhm_mm"]["default"] == 12.0
    jsonschema.validate({"tbm": {"correction": "fdr", "permutations": 100,
                                 "variance_fwhm_mm": 0.0}}, schema)
    for bad in ({"correction": "bonferroni"}, {"permutations": 50},
                {"variance_fwhm_mm": -1.0}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"tbm": bad}, schema)
    rule = (ROOT / "workflow/rules/tbm.smk").read_text().split("rule tbm_glm:")[1]
    rule = rule.split("\nrule ")[0]
    for key in ("correction", "permutations", "variance_fwhm_mm", "q", "fwhm_mm"):
        assert f'{key}=TBM["{key}"]' in rule, key
    assert 'seed=config["seed"]' in rule and 'threads: TBM["resources"]["threads"]' in rule

    rng = np.random.default_rng(11)
    logj = 0.05 * _maps(rng, 4)
    jacobians, mask_path = jacobian_cohort(tmp_path, logj, np.ones(SHAPE, bool))
    table = tmp_path / "participants.tsv"
    table.write_text("subject\tgroup\tage\n" + "".join(
        f"s{i}\t{'ab'[i % 2]}\t{60 + 3 * i}\n" for i in range(4)))
    out = tmp_path / "tbm"
    out.mkdir()
    params = SimpleNamespace(design={"group_column": "group", "covariates": ["age"],
                                     "groups": ["a", "b"]},
                             subjects=[f"s{i}" for i in range(4)], fwhm_mm=4.0, q=0.2,
                             correction="fwe", permutations=150, variance_fwhm_mm=0.0, seed=5)
    stand_in = SimpleNamespace(
        input=SimpleNamespace(jacobians=[str(j) for j in jacobians], mask=str(mask_path),
                              template=str(mask_path), table=str(table)),
        output=SimpleNamespace(summary=str(out / "tbm_summary.json"),
                               logjac=[str(out / f"s{i}_logjac.nii.gz") for i in range(4)]),
        params=params, log=[str(tmp_path / "glm.log")], threads=3)
    calls = []

    def recorded(*args, **kwargs):
        calls.append(kwargs)
        return voxelwise_tbm(*args, **kwargs)

    monkeypatch.setattr("nir.stats.tbm.voxelwise_tbm", recorded)
    runpy.run_path(str(ROOT / "workflow/scripts/tbm_glm.py"), init_globals={"snakemake": stand_in})
    assert [call["workers"] for call in calls] == [3]  # the job's threads enhance the maps
    summary = json.loads((out / "tbm_summary.json").read_text())
    assert summary["correction_method"] == "fwe" and summary["q"] == 0.2
    assert summary["permutations"] == 24  # 4! < 150: every permutation, once
    assert summary["variance_fwhm_mm"] == 0.0 and summary["seed"] == 5
    assert summary["correction"].startswith("FWE") and "max |t|" in summary["correction"]
