"""Template construction and TBM through the workflow: config-time errors for a bad design or
covariate, the TIV job planned, and (slow) the two-group demo end to end: the atrophy found
where it was put and named in the cluster table, null cohorts with no discoveries, and a
template less biased than a single subject."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from nir.stats.tbm import voxelwise_tbm
from nir.stats.volumes import read_tiv
from nir.study.atrophy import region_in_world
from nir.study.design import Design
from tests.cube_cohort import write_cube_cohort

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
TBM_CONFIG = ROOT / "config" / "tbm.yaml"
PEAK_DISTANCE_MM = 5.0
# the mean displacement to the final template, averaged over its foreground: under this bound,
# and under a third of that to a single subject (iteration 0, template.initial: sub-01)
TEMPLATE_BIAS_MM = 0.25
NULL_PERMUTATIONS = 250  # per null split (test_null_cohort_has_no_discoveries says why)


def _snakemake(workdir: Path, config: Path | list[Path], *extra: str, timeout: float = 1800
               ) -> subprocess.CompletedProcess:
    configs = [config] if isinstance(config, Path) else config  # later files amend earlier
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir),
               "--configfile", *map(str, configs), "--cores", "2", *extra]
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                   os.environ.get("PATH", "")])}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def _sheet_cohort(tmp_path: Path, rows: list[str], covariates: tuple[str, ...] = ("age",),
                  preprocessed: bool = True) -> Path:
    """Four tiny subjects (already preprocessed, or not) and a sample sheet with group and age
    columns."""
    sheet = write_cube_cohort(tmp_path, rows)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "cohort": str(sheet), "preprocessed": preprocessed, "pairs": {"mode": "none"},
        "methods": {"nir": {"preset": "fast"}}, "template": {"build": True, "iterations": 1},
        "tbm": {"enabled": True, "covariates": list(covariates)}}))
    return config


@pytest.mark.parametrize(("rows", "expected"), [
    (["a\t60", "b\t61", "a\t62", "a\t63"], ["'group'", "'b'", "'sub-02'", "at least 2"]),
    (["a\t60", "b\t61", "\t62", "b\t63"], ["'group'", "'sub-03'", "no value"]),
    (["a\t60", "b\t61", "a\tsixty", "b\t63"], ["'age'", "'sub-03'", "not a number"]),
])
def test_bad_design_stops_the_workflow_at_config_time(tmp_path: Path, rows: list[str],
                                                      expected: list[str]) -> None:
    done = _snakemake(tmp_path, _sheet_cohort(tmp_path, rows), "-n", timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "NirInputError" in output and "cohort.tsv" in output
    for part in expected:
        assert part in output, output[-3000:]
    assert not (tmp_path / "results").exists()  # no job ran


@pytest.mark.parametrize(("covariates", "expected"), [
    (("age", "sex"), ["no column 'sex'", "found: subject, t1w, labels, group, age"]),
    (("age", "tiv"), ["covariate 'tiv' is not a column", "preprocessed: true"]),
])
def test_unknown_or_uncomputable_covariate_stops_the_workflow(tmp_path: Path,
                                                              covariates: tuple[str, ...],
                                                              expected: list[str]) -> None:
    rows = ["a\t60", "b\t61", "a\t62", "b\t63"]
    done = _snakemake(tmp_path, _sheet_cohort(tmp_path, rows, covariates), "-n", timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "NirInputError" in output and "cohort.tsv" in output
    for part in expected:
        assert part in output, output[-3000:]


def test_tiv_is_computed_from_the_native_brain_masks(tmp_path: Path) -> None:
    """With preprocessing, covariates [age, tiv] plan one TIV job over the native masks that
    the GLM and the volume tests read; the cluster table and its MNI affine are planned too."""
    rows = ["a\t60", "b\t61", "a\t62", "b\t63", "a\t64", "b\t65"]
    config = _sheet_cohort(tmp_path, rows, ("age", "tiv"), preprocessed=False)
    done = _snakemake(tmp_path, config, "-n", "--quiet", "rules", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    counts = dict(line.split()[:2] for line in done.stdout.splitlines()
                  if line.split()[:1] and line.split()[0].startswith(("tbm_", "preprocess")))
    assert counts["tbm_tiv"] == "1" and counts["preprocess"] == "6"
    assert counts["tbm_clusters"] == "1" and counts["tbm_mni"] == "1"
    plan = _snakemake(tmp_path, config, "-n", timeout=300).stdout
    for rule in ("tbm_glm", "tbm_volumes"):
        inputs = plan.split(f"rule {rule}:")[1].split("\n")[1]
        assert inputs.strip().startswith("input: results/tables/tbm_tiv.csv"), inputs
    masks = plan.split("rule tbm_tiv:")[1].split("\n")[1]
    assert masks.count("_brainmask.nii.gz") == 6


def test_good_design_plans_one_job_per_subject_and_iteration(tmp_path: Path) -> None:
    done = _snakemake(tmp_path, _sheet_cohort(tmp_path, ["a\t60", "b\t61", "a\t62", "b\t63"]),
                      "-n", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    counts = dict(line.split()[:2] for line in done.stdout.splitlines()
                  if line.split()[:1] and line.split()[0].startswith(("template_", "tbm_")))
    # 4 subjects x rounds 0 and 1 (the last round's rule writes the inverse warps too)
    assert counts["template_register"] == counts["template_register_final"] == "4"
    assert counts["template_update"] == "1" and counts["tbm_glm"] == "1"


@pytest.fixture(scope="module")
def tbm_run(tmp_path_factory) -> Path:
    """The make demo-tbm workflow (config/tbm.yaml, which keeps the last round's det J maps)
    and its report, in a scratch folder (NIR_TEST_TBM_RUN names the working folder of a
    finished run to check instead)."""
    given = os.environ.get("NIR_TEST_TBM_RUN")
    if given and (Path(given) / "results-tbm" / "report.html").exists():
        return Path(given) / "results-tbm"
    workdir = tmp_path_factory.mktemp("tbm")
    for extra in ((), ("--report", str(workdir / "results-tbm" / "report.html"))):
        done = _snakemake(workdir, [TBM_CONFIG], *extra)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return workdir / "results-tbm"


def _final_iteration() -> int:
    return int(yaml.safe_load(TBM_CONFIG.read_text())["template"]["iterations"])


def _region(results: Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    tmap = nib.load(results / "tbm" / "tbm_t.nii.gz")
    truth = nib.load(results / "demo" / "atrophy_logjac.nii.gz")
    return region_in_world(truth, tmap.shape, tmap.affine), tmap


@pytest.mark.slow
def test_simulated_atrophy_is_found_where_it_was_put(tbm_run: Path) -> None:
    region, tmap = _region(tbm_run)
    significant = np.asarray(nib.load(tbm_run / "tbm" / "tbm_significant.nii.gz").dataobj) > 0
    summary = json.loads((tbm_run / "tbm" / "tbm_summary.json").read_text())
    assert significant.sum() > 0 and summary["peak_t"] < 0  # patients have less volume
    region_mm = nib.affines.apply_affine(tmap.affine, np.argwhere(region))
    distance = np.linalg.norm(region_mm - summary["peak_mm"], axis=1).min()
    inside = (significant & region).sum() / significant.sum()
    print(f"peak {summary['peak_mm']} t={summary['peak_t']:.2f}: {distance:.1f} mm from the "
          f"region; {significant.sum()} significant voxels, {100 * inside:.0f} % inside")
    assert summary["correction_method"] == "tfce" and summary["covariates"] == ["age", "tiv"]
    assert distance <= PEAK_DISTANCE_MM
    assert inside > 0.5
    assert (tbm_run / "report.html").stat().st_size > 50_000
    for name in ("tbm_tmap", "tbm_glass", "tbm_effect_sizes", "template_progress"):
        assert (tbm_run / "figures" / f"{name}.png").stat().st_size > 5_000


@pytest.mark.slow
def test_cluster_table_names_the_atrophied_structure(tbm_run: Path) -> None:
    """The largest cluster is the patients' loss in the left hippocampus, its peak in the
    atrophy region, in MNI mm within a few mm of template mm (the template is built on the
    MNI152 grid from affinely aligned subjects)."""
    clusters = pd.read_csv(tbm_run / "tbm" / "clusters.csv")
    print(clusters.to_string())
    first = clusters.iloc[0]
    assert first["structure"] == "Left-Hippocampus"
    assert first["structures"].startswith("Left-Hippocampus")
    assert first["direction"] == "patient < control" and first["p_corrected"] <= 0.05
    assert first["volume_mm3"] == first["voxels"] * 8.0  # 2 mm template voxels
    region, tmap = _region(tbm_run)
    peak = first[["x_mm", "y_mm", "z_mm"]].to_numpy(float)
    region_mm = nib.affines.apply_affine(tmap.affine, np.argwhere(region))
    assert np.linalg.norm(region_mm - peak, axis=1).min() <= PEAK_DISTANCE_MM
    assert np.linalg.norm(first[["mni_x", "mni_y", "mni_z"]].to_numpy(float) - peak) < 5.0
    assert "Left-Hippocampus" in (tbm_run / "tbm" / "clusters.md").read_text()


@pytest.mark.slow
def test_template_qc_flags_no_demo_subject(tbm_run: Path) -> None:
    """Every demo subject is a sound registration onto the template: none is flagged, and each
    has its panel (the flagging of a bad one: tests/test_exclusions.py, test_template_qc.py)."""
    qc = pd.read_csv(tbm_run / "template" / "qc" / "template_qc.csv")
    print(qc.to_string())
    subjects = [f"sub-{i:02d}" for i in range(1, 13)]
    assert qc["subject"].tolist() == subjects
    assert not qc["outlier"].any()
    assert qc["dice"].min() > 0.85 and qc["ncc"].min() > 0.98
    for sid in subjects:
        assert (tbm_run / "template" / "qc" / f"{sid}.png").stat().st_size > 20_000


def _hippocampus_tests(results: Path) -> pd.DataFrame:
    tests = pd.read_csv(results / "tables" / "tbm_structures.csv")
    return tests[tests["source"] == "jacobian"].set_index("structure")


@pytest.mark.slow
def test_left_hippocampus_loses_volume_and_the_right_does_not(tbm_run: Path) -> None:
    jac = _hippocampus_tests(tbm_run)
    assert jac.loc["Left-Hippocampus", "percent_difference"] < -5
    assert jac.loc["Left-Hippocampus", "significant"]
    assert not jac.loc["Right-Hippocampus", "significant"]
    assert abs(jac.loc["Right-Hippocampus", "percent_difference"]) < 2


def _tbm_settings() -> dict:
    """The tbm keys of config/tbm.yaml over the schema's defaults, the run's seed, and its
    statistics job's threads as the TFCE's processes."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = yaml.safe_load(TBM_CONFIG.read_text())
    keys = ("fwhm_mm", "q", "correction", "permutations", "variance_fwhm_mm")
    settings = {k: v.get("default") for k, v in schema["properties"]["tbm"]["properties"].items()
                if k in keys}
    settings.update({k: v for k, v in config.get("tbm", {}).items() if k in keys})
    workers = config.get("tbm", {}).get("resources", {}).get("threads", 1)
    return {**settings, "seed": config.get("seed", 0), "workers": workers}


@pytest.mark.slow
def test_null_cohort_has_no_discoveries(tbm_run: Path) -> None:
    """Same generator, no group effect: all 12 subjects split 6 + 6 with three controls and
    three patients on each side (so the atrophy is balanced out), the configured covariates
    (age and the computed TIV), five seeds, tested with the configured correction; at a level
    of 0.05 a discovery anywhere should occur in about 1 of 20 such splits.

    Each split draws NULL_PERMUTATIONS permutations, not the configured 1,000: a permutation
    test with the identity among its draws holds its level at any count (more draws only
    sharpen the p-values), and five tests at 1,000 took eight minutes of the suite."""
    subjects = [f"sub-{i:02d}" for i in range(1, 13)]
    final = f"iter-{_final_iteration():02d}"
    jacobians = [tbm_run / "template" / final / "register" / s / f"{s}_jacobian.nii.gz"
                 for s in subjects]
    if not all(path.exists() for path in jacobians):
        pytest.skip(f"{tbm_run} kept no det J maps (run it with outputs.jacobian: true)")
    table = pd.read_csv(tbm_run / "demo" / "participants.tsv", sep="\t").set_index("subject")
    controls = [s for s in subjects if table.loc[s, "group"] == "control"]
    patients = [s for s in subjects if table.loc[s, "group"] == "patient"]
    settings = {**_tbm_settings(), "permutations": NULL_PERMUTATIONS}
    tiv = read_tiv(tbm_run / "tables" / "tbm_tiv.csv")
    covariates = {"age": table.loc[subjects, "age"].to_numpy(float),
                  "tiv": np.array([tiv[s] for s in subjects])}
    counts = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        first = {*rng.choice(controls, 3, replace=False), *rng.choice(patients, 3, replace=False)}
        design = Design(tuple(subjects), tuple("x" if s in first else "y" for s in subjects),
                        ("x", "y"), covariates)
        result = voxelwise_tbm(jacobians, tbm_run / "template" / "template_brainmask.nii.gz",
                               design, **settings)
        counts.append(result.summary["significant_voxels"])
    print(f"null splits: significant voxels {counts}")
    assert sum(c > 0 for c in counts) <= 1


@pytest.mark.slow
def test_template_is_less_biased_than_a_single_subject(tbm_run: Path) -> None:
    rounds = [json.loads((tbm_run / "template" / f"iter-{k:02d}" / "round.json").read_text())
              for k in range(_final_iteration() + 1)]
    single, final = rounds[0]["mean_displacement_mm"], rounds[-1]["mean_displacement_mm"]
    print(f"mean displacement to the template: single subject {single:.3f} mm, built "
          f"{final:.3f} mm; sharpness {[r['sharpness'] for r in rounds]}")
    assert final < TEMPLATE_BIAS_MM
    assert final < single / 3
