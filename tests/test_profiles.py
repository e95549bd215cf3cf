"""Dry runs of the shipped profiles: what register jobs would request (no cluster needed).

Each test runs ``snakemake -n`` on the reduced demo (config/test.yaml) with a profile, reads the
resources that Snakemake prints for every job, and feeds the register job's resources to the
SLURM plugin's own ``--gpus`` / ``--cpus-per-task`` builders to see the sbatch arguments.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yte
from snakemake_executor_plugin_slurm.utils import set_gres_string
from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def dry_run(workdir: Path, profile: str, env: dict[str, str], *extra: str) -> str:
    """Output of ``snakemake -n`` for the reduced demo with ``profile`` and extra env vars.

    A dry run plans with the local scheduler, which caps threads at ``--cores`` (1 unless
    given); on the cluster there is no such cap, so slurm dry runs pass ``--cores 8``.
    """
    if profile == "slurm":
        extra = ("--cores", "8", *extra)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NIR_SLURM_", "NIR_LOCAL_"))}
    clean["PATH"] = f"{SNAKEMAKE.parent}{os.pathsep}{clean.get('PATH', '')}"
    result = subprocess.run(
        [str(SNAKEMAKE), "-n", "--snakefile", str(REPO / "workflow/Snakefile"),
         "--directory", str(workdir), "--profile", str(REPO / "profiles" / profile),
         *extra, "--configfile", str(REPO / "config/test.yaml")],
        env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _value(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def jobs_of(output: str) -> list[tuple[str, dict[str, int | str], str]]:
    """(rule, resources, shell command) of every job in a dry-run printout."""
    jobs: list[tuple[str, dict[str, int | str], str]] = []
    rule, resources = None, {}
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("rule ") and text.endswith(":"):
            rule, resources = text[5:-1], {}
        elif text.startswith("resources:") and rule:
            pairs = (item.split("=", 1) for item in text[len("resources:"):].split(", "))
            resources = {key.strip(): _value(val.strip()) for key, val in pairs}
        elif text.startswith("Shell command:") and rule:
            jobs.append((rule, resources, text[len("Shell command:"):].strip()))
            rule = None
    return jobs


class _Resources(dict):
    __getattr__ = dict.__getitem__


def sbatch_gpu_and_cpu_args(resources: dict[str, int | str]) -> tuple[str, str]:
    """The ``--gpus`` and ``--cpus-per-task`` parts of the plugin's sbatch call for a job."""
    job = SimpleNamespace(resources=_Resources(resources), threads=1)
    gpu_job = bool(resources.get("gpu"))
    return set_gres_string(job).strip(), get_cpu_setting(job, gpu_job)


def register_jobs(output: str) -> list[tuple[dict[str, int | str], str]]:
    jobs = [(res, shell) for rule, res, shell in jobs_of(output) if rule == "register"]
    assert len(jobs) == 2, output  # config/test.yaml: 3 subjects, template pairs
    return jobs


def test_slurm_profile_requests_one_gpu_per_register_job(tmp_path):
    output = dry_run(tmp_path, "slurm", {"NIR_SLURM_PARTITION": "short",
                                         "NIR_SLURM_GPU_PARTITION": "gpu",
                                         "NIR_SLURM_ACCOUNT": "lab42"})
    for resources, shell in register_jobs(output):
        assert resources["gpu"] == 1 and "gpu_model" not in resources
        assert resources["slurm_partition"] == "gpu" and resources["slurm_account"] == "lab42"
        assert resources["mem_mb"] == 2000  # from the workflow (config/test.yaml), attempt 1
        assert sbatch_gpu_and_cpu_args(resources) == ("--gpus=1", "--cpus-per-task=2")
        assert "--threads 2" in shell
    others = [res for rule, res, _ in jobs_of(output) if rule not in ("register", "all")]
    assert others, output
    for resources in others:
        assert "gpu" not in resources and resources["slurm_partition"] == "short"
        assert sbatch_gpu_and_cpu_args(resources)[0] == ""
    assert "Group job" not in output  # grouping is off by default


def test_slurm_profile_gpu_model(tmp_path):
    output = dry_run(tmp_path, "slurm", {"NIR_SLURM_GPU_MODEL": "a100", "NIR_SLURM_CPUS": "4"})
    for resources, shell in register_jobs(output):
        assert resources["slurm_partition"] == "YOUR_PARTITION"  # placeholder until filled in
        assert resources["gpu_model"] == "a100"
        assert sbatch_gpu_and_cpu_args(resources) == ("--gpus=a100:1", "--cpus-per-task=4")
        assert "--threads 4" in shell


def test_slurm_profile_without_gpu(tmp_path):
    output = dry_run(tmp_path, "slurm", {"NIR_SLURM_GPUS": "0", "NIR_SLURM_GPU_MODEL": "a100"})
    for resources, _ in register_jobs(output):
        assert resources["gpu"] == 0 and "gpu_model" not in resources
        assert sbatch_gpu_and_cpu_args(resources) == ("", "--cpus-per-task=2")


def test_grouping_packs_register_jobs_into_one_group_job(tmp_path):
    output = dry_run(tmp_path, "slurm", {}, "--groups", "register=registration",
                     "--group-components", "registration=8", "--resources", "gpu=1",
                     "--set-resource-scopes", "gpu=local")
    group = output.split("Group job registration", 1)[1].split("\n[", 1)[0]
    assert group.count("rule register:") == 2, output


@pytest.mark.parametrize("gpus", [0, 1])
def test_local_profile_gpu_token(tmp_path, gpus):
    output = dry_run(tmp_path, "local", {"NIR_LOCAL_GPUS": str(gpus)})
    for resources, _ in register_jobs(output):
        assert resources["gpu"] == gpus



def test_local_profile_offers_one_gpu_and_most_of_the_memory():
    with open(REPO / "profiles/local/config.yaml") as stream:
        profile = yte.process_yaml(stream, require_use_yte=True)
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    assert profile["resources"]["gpu"] == 1
    assert 0.5 * total_mb < profile["resources"]["mem_mb"] < total_mb
