"""The reduced demo on a live one-node SLURM cluster through profiles/slurm (``pytest -m slurm``).

The session fixture installs slurm-wlm, munge, slurmdbd and mariadb-server (Debian packages) and
starts a throwaway cluster (tests/slurm_cluster.py). The reduced demo (config/test.yaml, with
fewer iterations still: REDUCED) is run locally through profiles/local up to the preprocessed
images and both registered pairs, the reference. A copy of that run, without the second pair's
registration, then goes through SLURM: the first pair is registered again (``--forcerun
register``) while the second pair's moving image is corrupt; after the file is fixed, a re-run
does the missing jobs only, and the table must hold the reference's scores for both pairs.

The shipped slurm profile gets the partition and account of the test cluster through its
environment variables. What each register job asks for comes from config/test.yaml, as on any
cluster: no GPU (this machine has none) and one thread, the local reference's thread count, which
keeps the two runs bit-comparable (and lets the two register jobs share the node's two cores).
On the command line: ``--slurm-init-seconds-before-status-checks 2`` (the profile's 40 s suits
long jobs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tests import slurm_cluster

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METHOD = "nir-fast"  # the one method of config/test.yaml
GOOD_PAIR, BAD_PAIR = "sub-02_to_sub-01", "sub-03_to_sub-01"
BAD_MOVING = "results/preprocess/sub-03/sub-03_preproc.nii.gz"
TARGET = "results/tables/pairs.csv"
REDUCED = ("methods:\n  nir-fast:\n    coarse_iterations: 3\n    iterations: 3\n"
           "outputs: {warp: true, jacobian: true}\n")  # compared between the two runs below
SNAKEMAKE_TIMEOUT = 600  # seconds, a safety net: with accounting broken the plugin polls forever


def snakemake(workdir: Path, profile: str, env: dict[str, str], *extra: str,
              targets: tuple[str, ...] = (TARGET,)) -> tuple[int, str]:
    """Run the reduced demo in ``workdir``; returns (exit status, combined output).

    The run gets its own process group, killed outright on timeout: the SLURM plugin can keep
    polling a broken cluster forever and then ignores SIGTERM.
    """
    reduced = workdir / "reduced.yaml"
    reduced.write_text(REDUCED)
    command = [str(BIN / "snakemake"), *targets, "--snakefile", str(REPO / "workflow/Snakefile"),
               "--directory", str(workdir), "--profile", str(REPO / "profiles" / profile),
               *extra, "--configfile", str(REPO / "config/test.yaml"), str(reduced)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=SNAKEMAKE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"snakemake timed out after {SNAKEMAKE_TIMEOUT} s:\n{output[-4000:]}")
    return process.returncode, output


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table that Snakemake prints before running (or dry-running)."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = (line.split() for line in table.splitlines()[3:])
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] != "total"}


def sacct_jobs(cluster: slurm_cluster.SlurmCluster) -> list[dict[str, str]]:
    """Every job the cluster's accounting database knows, oldest first."""
    fields = ["JobID", "Comment", "State", "ReqMem", "AllocCPUS", "AllocTRES", "Account",
              "Partition"]
    result = cluster.run("sacct", "-X", "-n", "-P", "-a", "-S", "2020-01-01",
                         "-o", ",".join(fields))
    return [dict(zip(fields, line.split("|"), strict=True))
            for line in result.stdout.splitlines() if line]


def wildcards(pair: str) -> str:
    """How the SLURM plugin spells a register job's wildcards (method, moving, fixed)."""
    return f"{METHOD}_{pair.replace('_to_', '_')}"


def register_jobs(jobs: list[dict[str, str]], pair: str) -> list[dict[str, str]]:
    return [job for job in jobs if job["Comment"] == f"rule_register_wildcards_{wildcards(pair)}"]


def register_output(workdir: Path, pair: str, kind: str) -> Path:
    return workdir / f"results/register/{METHOD}/{pair}/{pair}_{kind}.nii.gz"


@pytest.fixture(scope="session")
def cluster():
    """A running one-node cluster with accounting; every daemon is stopped at teardown."""
    reason = slurm_cluster.missing_prerequisite()
    if reason:
        pytest.skip(reason)
    slurm_cluster.install()
    running = slurm_cluster.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def drill(cluster, tmp_path_factory):
    """Reference run, SLURM run with a corrupt moving image, dry run and re-run after the fix."""
    env = {**cluster.env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "NIR_LOCAL_GPUS": "0", "NIR_SLURM_PARTITION": slurm_cluster.PARTITION,
           "NIR_SLURM_ACCOUNT": slurm_cluster.ACCOUNT}
    fast = ("--slurm-init-seconds-before-status-checks", "2")
    reference = tmp_path_factory.mktemp("reference")
    status, output = snakemake(reference, "local", env, targets=tuple(
        f"results/register/{METHOD}/{pair}/{pair}_summary.json" for pair in (GOOD_PAIR, BAD_PAIR)))
    assert status == 0, output[-4000:]

    workdir = tmp_path_factory.mktemp("on-slurm")
    shutil.copytree(reference / "results", workdir / "results")  # keeps mtimes: nothing stale
    shutil.rmtree(workdir / f"results/register/{METHOD}/{BAD_PAIR}")  # SLURM registers it
    for leftover in (f"metrics/{METHOD}/{BAD_PAIR}.csv", f"logs/register/{METHOD}/{BAD_PAIR}.log",
                     f"benchmarks/register/{METHOD}/{BAD_PAIR}.tsv"):
        (workdir / "results" / leftover).unlink()
    good_copy = workdir / "moving-backup.nii.gz"
    shutil.copy2(workdir / BAD_MOVING, good_copy)
    (workdir / BAD_MOVING).write_bytes(b"not a NIfTI file\n")
    first = snakemake(workdir, "slurm", env, *fast, "--forcerun", "register")
    jobs_after_first = sacct_jobs(cluster)
    bad_log = workdir / f"results/logs/register/{METHOD}/{BAD_PAIR}.log"
    after_first = {
        "bad_outputs": [kind for kind in ("warped", "warp", "jacobian")
                        if register_output(workdir, BAD_PAIR, kind).exists()],
        "bad_log": bad_log.read_text() if bad_log.exists() else "",
        "slurm_logs": sorted((workdir / ".snakemake/slurm_logs/rule_register").glob(
            f"{wildcards(BAD_PAIR)}/*.log")),
    }

    shutil.copy2(good_copy, workdir / BAD_MOVING)
    planned = snakemake(workdir, "slurm", env, "--dry-run")
    second = snakemake(workdir, "slurm", env, *fast)
    return {"reference": reference, "workdir": workdir, "first": first,
            "jobs_after_first": jobs_after_first, "after_first": after_first,
            "planned": planned, "second": second, "jobs": sacct_jobs(cluster)}


def test_register_jobs_ran_as_slurm_jobs(drill):
    output = drill["first"][1]
    planned = {"register": 2, "tables": 1}  # all jobs downstream of register (which evaluates)
    assert job_counts(output) == planned, output[-3000:]
    good = register_jobs(drill["jobs_after_first"], GOOD_PAIR)
    assert [job["State"] for job in good] == ["COMPLETED"], drill["jobs_after_first"]
    assert good[0]["Account"] == slurm_cluster.ACCOUNT
    assert good[0]["Partition"] == slurm_cluster.PARTITION
    assert good[0]["AllocCPUS"] == "1" and "gpu" not in good[0]["AllocTRES"]
    summary = json.loads((drill["workdir"] / f"results/register/{METHOD}/{GOOD_PAIR}/"
                          f"{GOOD_PAIR}_summary.json").read_text())
    assert summary["device"] == "cpu"


def test_corrupt_pair_fails_alone_with_memory_growing_per_attempt(drill):
    status, output = drill["first"]
    assert status != 0
    bad = register_jobs(drill["jobs_after_first"], BAD_PAIR)
    assert [job["State"] for job in bad] == ["FAILED"] * 3, drill["jobs_after_first"]
    assert [int(re.match(r"\d+", job["ReqMem"]).group()) for job in bad] == [2000, 4000, 6000]
    # the good pair's job evaluated it too (evaluation.in_register_job, the default)
    assert (drill["workdir"] / f"results/metrics/{METHOD}/{GOOD_PAIR}.csv").exists()
    after_first = drill["after_first"]
    assert after_first["bad_outputs"] == []  # no half-written registration left behind
    assert BAD_MOVING.split("/")[-1] in after_first["bad_log"]  # the error names the file
    # failed jobs keep their SLURM log under .snakemake/slurm_logs/rule_<rule>/<wildcards>/
    assert len(after_first["slurm_logs"]) == 3, output[-3000:]


def test_rerun_after_fix_does_only_the_missing_jobs(drill):
    status, output = drill["planned"]
    assert status == 0, output[-3000:]
    assert job_counts(output) == {"register": 1, "tables": 1}, output[-3000:]
    status, output = drill["second"]
    assert status == 0, output[-4000:]
    assert job_counts(output) == {"register": 1, "tables": 1}
    new = drill["jobs"][len(drill["jobs_after_first"]):]
    assert [job["Comment"] for job in new if job["Comment"].startswith("rule_register")] == [
        f"rule_register_wildcards_{wildcards(BAD_PAIR)}"]
    assert all(job["State"] == "COMPLETED" for job in new), new


def test_slurm_registration_equals_the_local_run(drill):
    workdir, reference = drill["workdir"], drill["reference"]
    assert register_output(workdir, GOOD_PAIR, "warp").stat().st_mtime > (
        register_output(reference, GOOD_PAIR, "warp").stat().st_mtime)  # really redone
    for kind, atol in (("warped_labels", 0), ("warped", 1e-5), ("warp", 1e-5),
                       ("jacobian", 1e-5)):
        on_slurm = np.asanyarray(nib.load(register_output(workdir, GOOD_PAIR, kind)).dataobj)
        local = np.asanyarray(nib.load(register_output(reference, GOOD_PAIR, kind)).dataobj)
        np.testing.assert_allclose(on_slurm, local, rtol=0, atol=atol, err_msg=kind)


def test_table_covers_both_pairs_after_the_rerun(drill):
    assert drill["second"][0] == 0
    table = pd.read_csv(drill["workdir"] / TARGET)
    table = table[table["method"] == METHOD]
    assert set(table["pair"]) == {GOOD_PAIR, BAD_PAIR}
    # every pair, registered and scored on SLURM, has the very Dice of the local reference run
    key = ["stage", "structure", "label"]
    for pair in (GOOD_PAIR, BAD_PAIR):
        local = pd.read_csv(drill["reference"] / f"results/metrics/{METHOD}/{pair}.csv")
        local = local[local["metric"] == "dice"].set_index(key)["value"].sort_index()
        on_slurm = table[(table["pair"] == pair) & (table["metric"] == "dice")]
        on_slurm = on_slurm.set_index(key)["value"].sort_index()
        assert len(local) > 0 and on_slurm.index.equals(local.index), pair
        np.testing.assert_allclose(on_slurm.to_numpy(), local.to_numpy(), rtol=0, atol=1e-6,
                                   err_msg=pair)
