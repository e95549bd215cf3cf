"""The workflow's default config, and its use as a Snakemake module (as snakedeploy deploys it).

A *repository copy* (workflow/ and config/ copied into a temporary folder) stands in for the
repository root, so plain ``snakemake`` finds ``workflow/Snakefile`` and ``config/config.yaml``
there without touching this checkout's results/ or .snakemake/. A *deployment* is what
``snakedeploy deploy-workflow`` makes: a folder with config/ copied from the workflow and a
``workflow/Snakefile`` that only declares the module and uses all its rules; here the module's
snakefile is this checkout's, given by its local path.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "config" / "config.yaml"
TEST_CONFIG = ROOT / "config" / "test.yaml"
DEPLOYED_SNAKEFILE = """\
configfile: "config/config.yaml"


module nir_cohort:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from nir_cohort
"""


def snakemake(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run Snakemake in ``cwd`` (as a user would, no --snakefile unless given); must succeed."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                   os.environ.get("PATH", "")])}
    done = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def planned(cwd: Path, *args: str) -> Counter:
    """The jobs of a dry run: (rule, its output files) for every job, counted."""
    text = snakemake(cwd, "-n", "--cores", "2", *args).stdout
    jobs: Counter = Counter()
    rule, output = None, ""
    for line in text.splitlines():
        match = re.fullmatch(r"(?:local)?rule (\w+):", line.strip())
        if match:
            rule, output = match.group(1), ""
        elif rule and line.startswith("    output: "):
            output = line[len("    output: "):]
        elif rule and line.startswith("    jobid: "):
            jobs[(rule, output)] += 1
            rule = None
    assert jobs, text
    return jobs


def per_rule(jobs: Counter) -> dict[str, int]:
    counts: Counter = Counter()
    for (rule, _), n in jobs.items():
        counts[rule] += n
    return dict(counts)


def demo_register_jobs(config: Path) -> int:
    """Register jobs of a demo config: template pairs, so (n_subjects - 1) per method."""
    values = yaml.safe_load(config.read_text())
    return (values["demo"]["n_subjects"] - 1) * len(values["methods"])


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    """workflow/ and config/ of this checkout, copied into a fresh folder."""
    copy = tmp_path_factory.mktemp("repository")
    for folder in ("workflow", "config"):
        shutil.copytree(ROOT / folder, copy / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def make_demo_arguments() -> list[str]:
    """The arguments of the (first, non-report) Snakemake call of `make demo`."""
    default = ["--snakefile", "workflow/Snakefile", "--configfile", "config/config.yaml"]
    if shutil.which("make") is None:
        return default
    done = subprocess.run(["make", "-n", "-C", str(ROOT), "demo"], capture_output=True,
                          text=True, timeout=60)  # -n: prints the commands, runs none
    assert done.returncode == 0, done.stderr
    lines = done.stdout.replace("\\\n", " ").splitlines()  # join continued lines
    calls = [shlex.split(line) for line in lines
             if line.startswith(".venv/bin/snakemake ") and "--report" not in line]
    assert calls, done.stdout
    assert "--configfile" in calls[0], calls[0]
    return calls[0][1:]


@pytest.fixture(scope="module")
def make_demo_jobs(repository: Path) -> Counter:
    """The jobs `make demo` runs (its Snakemake call, dry), in the repository copy."""
    return planned(repository, *make_demo_arguments())


def deploy(folder: Path) -> Path:
    """A snakedeploy-style deployment of this checkout's workflow into ``folder``."""
    shutil.copytree(ROOT / "config", folder / "config")
    (folder / "workflow").mkdir(parents=True)
    (folder / "workflow" / "Snakefile").write_text(
        DEPLOYED_SNAKEFILE.format(snakefile=ROOT / "workflow" / "Snakefile"))
    return folder


def test_plain_snakemake_plans_what_make_demo_runs(repository, make_demo_jobs) -> None:
    plain = planned(repository)  # no --snakefile, no --configfile
    assert plain == make_demo_jobs
    counts = per_rule(plain)
    assert counts["register"] == demo_register_jobs(DEMO_CONFIG) == 6
    assert counts["demo"] == 1 and counts["software_versions"] == 1


def test_the_slurm_profile_uses_the_default_config(repository, make_demo_jobs) -> None:
    # a dry run plans with the local scheduler, whatever the profile's executor
    assert planned(repository, "--profile", str(ROOT / "profiles" / "slurm"),
                   "--cores", "8") == make_demo_jobs


def test_a_configfile_on_the_command_line_replaces_the_default(repository) -> None:
    jobs = planned(repository, "--configfile", "config/test.yaml")
    assert per_rule(jobs)["register"] == demo_register_jobs(TEST_CONFIG) == 2
    outputs = " ".join(output for _, output in jobs)
    assert "nir-fast" in outputs
    assert "nir-velocity" not in outputs  # the default's methods are not merged in


def test_config_on_the_command_line_amends_the_default(repository, make_demo_jobs) -> None:
    jobs = planned(repository, "--config", "results=elsewhere")
    assert per_rule(jobs) == per_rule(make_demo_jobs)
    assert all(output.startswith("elsewhere/") for (rule, output) in jobs if rule != "all")


def test_the_default_config_is_still_validated(repository, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pairs: {mode: sideways}\n")
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1",
                           "--configfile", str(bad)], cwd=repository, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "sideways" in done.stdout + done.stderr
    (repository / "config" / "config.yaml").write_text(bad.read_text())  # the default too
    try:
        done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"],
                              cwd=repository, capture_output=True, text=True, timeout=120)
    finally:
        shutil.copy(DEMO_CONFIG, repository / "config" / "config.yaml")
    assert done.returncode != 0 and "sideways" in done.stdout + done.stderr


def test_the_module_plans_the_demo(tmp_path: Path, make_demo_jobs) -> None:
    deployment = deploy(tmp_path / "study")
    assert planned(deployment) == make_demo_jobs


@pytest.mark.slow
def test_the_module_runs_the_reduced_demo_end_to_end(tmp_path: Path) -> None:
    """The reduced demo through the module, from a folder that holds none of the workflow's
    files (schemas, report texts, scripts must come from the workflow's own tree)."""
    deployment = deploy(tmp_path / "study")
    shutil.copy(TEST_CONFIG, deployment / "config" / "config.yaml")  # the user's edit
    results = deployment / "results"
    snakemake(deployment, "--cores", "2", timeout=1800)
    snakemake(deployment, "--report", str(results / "report.html"))
    assert snakemake(deployment, "-n", "--cores", "2").stdout.count("jobid:") == 0

    frames = [pd.read_csv(p) for p in sorted((results / "metrics").glob("*/*.csv"))]
    assert len(frames) == demo_register_jobs(TEST_CONFIG)
    rows = pd.concat(frames)
    dice = rows[rows["metric"] == "mean_dice"].pivot_table(
        index=["method", "pair"], columns="stage", values="value")
    assert (dice["after"] > dice["before"]).all(), dice
    for name in ("summary.md", "per_structure.csv", "stats.csv"):
        assert (results / "tables" / name).stat().st_size > 0
    assert (results / "figures" / "dice_per_structure.png").stat().st_size > 1000

    versions = pd.read_csv(results / "software" / "versions.tsv", sep="\t", dtype=str,
                           keep_default_na=False).set_index("package")["version"]
    for dist in ("nir-cohort", "torch", "snakemake", "numpy"):
        assert versions[dist] == metadata.version(dist), dist
    report = (results / "report.html").read_text()
    assert "Neural-field image registration (NIR) of a brain-MRI cohort" in report  # workflow.rst
    assert "The software this run" in report  # the caption of versions.html
    assert sorted(p.name for p in (deployment / "workflow").iterdir()) == ["Snakefile"]
