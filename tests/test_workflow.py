"""The Snakemake workflow end to end: reduced demo (with a kill and a resume), real data, lint."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
TEST_CONFIG = ROOT / "config" / "test.yaml"
SUBJECTS = ("sub-01", "sub-02", "sub-03")  # config/test.yaml: demo.n_subjects = 3
FS_COHORT = ROOT.parent / "shared" / "data" / "fs-cohort"
ALIGNED = "derivatives/aligned160/{subject}/anat/{subject}_space-MNI305_desc-"


def _command(workdir: Path, config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir),
            "--configfile", str(config), "--cores", "2", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                    os.environ.get("PATH", "")])}


def snakemake(workdir: Path, config: Path, *extra: str,
              timeout: float = 600) -> subprocess.CompletedProcess:
    """Run Snakemake to completion; fail the test with its output if it fails."""
    done = subprocess.run(_command(workdir, config, *extra), capture_output=True, text=True,
                          timeout=timeout, env=_env())
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def planned_jobs(workdir: Path, config: Path) -> dict[str, int]:
    """Job counts per rule of a dry run (what a rerun would still do)."""
    text = snakemake(workdir, config, "-n").stdout
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\w+)\s+(\d+)$", text, re.MULTILINE)
            if m.group(1) != "total"}


def per_pair_dice(results: Path) -> pd.DataFrame:
    """Mean Dice before and after per (method, pair) from every per-pair metrics CSV."""
    frames = [pd.read_csv(p) for p in sorted((results / "metrics").glob("*/*.csv"))]
    rows = pd.concat(frames)
    mean = rows[rows["metric"] == "mean_dice"]
    return mean.pivot_table(index=["method", "pair"], columns="stage", values="value")


def _mtimes(folder: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*.nii.gz")}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> dict:
    """The reduced demo, killed (SIGKILL to its process group) while registering, then rerun."""
    workdir = tmp_path_factory.mktemp("demo")
    results = workdir / "results"
    process = subprocess.Popen(_command(workdir, TEST_CONFIG), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    deadline = time.monotonic() + 400
    summaries = [results / "preprocess" / s / f"{s}_summary.json" for s in SUBJECTS]
    try:
        # kill once every subject is preprocessed (those jobs must not be redone) and a
        # registration is under way (it must be)
        while not (all(p.exists() for p in summaries)
                   and list((results / "logs" / "register").glob("*/*.log"))):
            assert process.poll() is None, "the run ended before the kill point"
            assert time.monotonic() < deadline, "no registration started within 400 s"
            time.sleep(0.5)
        time.sleep(3)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    snakemake(workdir, TEST_CONFIG, "--unlock")  # a killed Snakemake cannot release its lock
    before_rerun = _mtimes(results / "preprocess")
    pending = planned_jobs(workdir, TEST_CONFIG)
    registered_before = _mtimes(results / "register")
    # finished: the pair's whole job, registration then evaluation, whose last output is the
    # metrics CSV (a summary alone may belong to a job killed while it evaluated: redone)
    finished = {p.parent for p in (results / "register").rglob("*_summary.json")
                if (results / "metrics" / p.parts[-3] / f"{p.parent.name}.csv").exists()}
    snakemake(workdir, TEST_CONFIG)
    snakemake(workdir, TEST_CONFIG, "--report", str(results / "report.html"))
    return {"workdir": workdir, "results": results, "pending": pending,
            "preprocess_mtimes": before_rerun, "register_mtimes": registered_before,
            "register_finished": finished}


def test_kill_then_rerun_redoes_only_unfinished_jobs(demo_run) -> None:
    pending = demo_run["pending"]
    assert "demo" not in pending and "preprocess" not in pending  # finished before the kill
    assert pending.get("register", 0) >= 1
    assert _mtimes(demo_run["results"] / "preprocess") == demo_run["preprocess_mtimes"]
    for path, mtime in demo_run["register_mtimes"].items():
        if not path.exists():  # outputs.warp/jacobian false: deleted once evaluated (temp)
            assert path.name.endswith(("_warp.nii.gz", "_jacobian.nii.gz")), path
        elif path.parent in demo_run["register_finished"]:  # finished before the kill: kept
            assert path.stat().st_mtime_ns == mtime, f"{path} was redone"
        else:  # anything a killed job left behind was rewritten, not taken as done
            assert path.stat().st_mtime_ns > mtime, f"{path} from the killed run was kept"
    assert planned_jobs(demo_run["workdir"], TEST_CONFIG) == {}


def test_demo_end_to_end_improves_every_pair(demo_run) -> None:
    results = demo_run["results"]
    dice = per_pair_dice(results)
    assert sorted(dice.index.get_level_values("pair")) == ["sub-02_to_sub-01", "sub-03_to_sub-01"]
    assert not dice.isna().any().any()
    assert (dice["after"] > dice["before"]).all(), dice
    metrics = pd.read_csv(results / "tables" / "pairs.csv")
    assert not metrics[metrics["metric"] == "dice"]["value"].isna().any()
    for name in ("summary.md", "per_structure.csv", "stats.csv"):
        assert (results / "tables" / name).stat().st_size > 0
    for name in ("dice_per_structure", "dice_vs_folding", "runtime"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 1000
    assert list((results / "figures" / "qc").glob("*/*.png"))
    kept = {p.name.split("_", 3)[-1] for p in (results / "register").glob("*/*/*.nii.gz")}
    assert kept == {"warped.nii.gz", "warped_labels.nii.gz"}  # the `outputs` defaults
    assert len(list((results / "benchmarks" / "register").glob("*/*.tsv"))) == 2
    assert (results / "report.html").stat().st_size > 10_000


def test_ants_baseline_joins_the_demo_run(demo_run, ants_venv, tmp_path: Path) -> None:
    """Adding an ANTs method to a finished run adds only its jobs, rows and comparisons."""
    import shutil

    import yaml

    workdir = tmp_path / "run"
    shutil.copytree(demo_run["workdir"], workdir)  # keeps mtimes: the NIR results stay done
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["methods"]["ants-quick"] = {"engine": "ants",
                                       "transform": "antsRegistrationSyNQuick[so]"}
    config["baselines"] = {"ants_venv": str(ants_venv)}
    config_path = tmp_path / "with_ants.yaml"
    config_path.write_text(yaml.safe_dump(config))
    planned = planned_jobs(workdir, config_path)
    assert planned.get("register_ants") == 2 and "register" not in planned, planned
    nir_outputs = _mtimes(workdir / "results" / "register" / "nir-fast")
    snakemake(workdir, config_path)
    assert _mtimes(workdir / "results" / "register" / "nir-fast") == nir_outputs
    # SyN quality is tested on a real pair (test_ants_baseline.py); on this tiny 3 mm demo
    # the quick preset barely moves Dice, so only completeness is checked here
    dice = per_pair_dice(workdir / "results").loc["ants-quick"]
    assert len(dice) == 2 and not dice.isna().any().any(), dice
    stats = pd.read_csv(workdir / "results" / "tables" / "stats.csv")
    assert stats.astype(str).apply(lambda col: col.str.contains("ants-quick")).any().any()
    assert (workdir / "results" / "figures" / "qc" / "ants-quick").is_dir()


def test_real_aligned_cohort_raises_dice(tmp_path: Path) -> None:
    if not FS_COHORT.is_dir():
        pytest.skip("real data ../shared/data/fs-cohort absent")
    config = tmp_path / "real.yaml"
    config.write_text(
        f"bids:\n  root: {FS_COHORT}\n"
        f'  t1w: "{ALIGNED}brain_T1w.nii.gz"\n  labels: "{ALIGNED}aseg_dseg.nii.gz"\n'
        "subjects: [sub-01, sub-02, sub-03]\npreprocessed: true\n"
        "pairs: {mode: template, template: sub-01}\n"
        "methods: {nir: {preset: fast}}\ndevice: cpu\nevaluation: {qc_pairs: 0}\n")
    snakemake(tmp_path, config, timeout=900)
    dice = per_pair_dice(tmp_path / "results")
    assert len(dice) == 2
    assert (dice["after"] - dice["before"]).mean() >= 0.10, dice


def test_lint_has_only_the_environment_finding(tmp_path: Path) -> None:
    variant = tmp_path / "variant.yaml"  # the other rules: ANTs, and a separate evaluate job
    variant.write_text("evaluation: {in_register_job: false, labels_set: all, qc_pairs: 1}\n"
                       "methods: {syn: {engine: ants}}\n")
    for extra in ((), ("--configfile", str(TEST_CONFIG), str(variant))):
        done = subprocess.run([*_command(tmp_path, TEST_CONFIG), *extra, "--lint"],
                              capture_output=True, text=True, timeout=120, env=_env())
        findings = set(re.findall(r"^    \* (.+?):?$", done.stdout + done.stderr, re.MULTILINE))
        # the software environment is the project's venv (make setup), not a conda env per rule
        assert findings <= {"Specify a conda environment or container for each rule."}, findings
        assert "rule register" in done.stdout + done.stderr  # the linter did read the rules
