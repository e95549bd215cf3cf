"""The shipped profiles: what register jobs request (no cluster needed).

Most tests run ``snakemake -n`` on the reduced demo (config/test.yaml) with a profile and read
the resources that Snakemake prints for every job. The sbatch tests run the SLURM executor for
real against a fake ``sbatch`` on PATH that records its arguments (and fails the submission).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yte

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def dry_run(workdir: Path, profile: str, env: dict[str, str], *extra: str,
            overlay: str = "") -> str:
    """Output of ``snakemake -n`` for the reduced demo with ``profile`` and extra env vars;
    ``overlay`` is YAML merged over config/test.yaml.

    A dry run plans with the local scheduler, which caps threads at ``--cores`` (1 unless
    given); on the cluster there is no such cap, so slurm dry runs pass ``--cores 8``.
    """
    if profile == "slurm":
        extra = ("--cores", "8", *extra)
    overlay_file = []
    if overlay:
        overlay_file = [str(workdir / "overlay.yaml")]
        Path(overlay_file[0]).write_text(overlay)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NIR_SLURM_", "NIR_LOCAL_"))}
    clean["PATH"] = f"{SNAKEMAKE.parent}{os.pathsep}{clean.get('PATH', '')}"
    result = subprocess.run(
        [str(SNAKEMAKE), "-n", "--snakefile", str(REPO / "workflow/Snakefile"),
         "--directory", str(workdir), "--profile", str(REPO / "profiles" / profile),
         *extra, "--configfile", str(REPO / "config/test.yaml"), *overlay_file],
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


def register_jobs(output: str) -> list[tuple[dict[str, int | str], str]]:
    jobs = [(res, shell) for rule, res, shell in jobs_of(output) if rule == "register"]
    assert len(jobs) == 2, output  # config/test.yaml: 3 subjects, template pairs
    return jobs


def test_slurm_profile_places_jobs_but_takes_register_needs_from_the_config(tmp_path):
    output = dry_run(tmp_path, "slurm", {"NIR_SLURM_PARTITION": "short",
                                         "NIR_SLURM_GPU_PARTITION": "gpu",
                                         "NIR_SLURM_ACCOUNT": "lab42"})
    for resources, shell in register_jobs(output):
        assert resources["slurm_partition"] == "gpu" and resources["slurm_account"] == "lab42"
        # config/test.yaml resources: runtime 10, mem_mb 2000 (attempt 1), gpu 0, threads 1
        assert (resources["runtime"], resources["mem_mb"], resources["gpu"]) == (10, 2000, 0)
        assert "gpu_model" not in resources and "cpus_per_task" not in resources
        assert "--threads 1" in shell
    others = [res for rule, res, _ in jobs_of(output) if rule not in ("register", "all")]
    assert others, output
    for resources in others:
        assert "gpu" not in resources and resources["slurm_partition"] == "short"
    assert "Group job" not in output  # grouping is off by default


def test_slurm_profile_gpu_model_names_the_config_gpus(tmp_path):
    output = dry_run(tmp_path, "slurm", {"NIR_SLURM_GPU_MODEL": "a100"},
                     overlay="resources: {threads: 4, mem_mb: 2000, runtime: 10, gpu: 1}\n")
    for resources, shell in register_jobs(output):
        assert resources["slurm_partition"] == "YOUR_PARTITION"  # placeholder until filled in
        assert resources["gpu_model"] == "a100" and resources["gpu"] == 1
        assert "--threads 4" in shell


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


FAKE_SBATCH = """#!{python}
import json, os, sys
with open(os.environ["FAKE_SBATCH_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit("fake sbatch: arguments recorded, nothing submitted")
"""
SUBJECTS = ("sub-01", "sub-02")
PAIR = "sub-02_to_sub-01"
SBATCH_CONFIG = """cohort: cohort.tsv
preprocessed: true
pairs: {mode: template}
resources: {threads: 2, mem_mb: 1500, runtime: 45, gpu: 0}
methods:
  long: {preset: fast, resources: {runtime: 240, threads: 3, gpu: 1}}
  plain: {preset: fast}
"""


def _fake_slurm(folder: Path) -> Path:
    """A bin folder with a recording ``sbatch``, a ``sacctmgr`` that knows account lab42, and
    silent ``sinfo``/``squeue``/``sacct``/``scontrol``/``sshare``."""
    folder.mkdir()
    scripts = {"sbatch": FAKE_SBATCH.format(python=sys.executable),
               "sacctmgr": "#!/bin/sh\necho lab42\n"}
    for name in ("sinfo", "squeue", "sacct", "scontrol", "sshare"):
        scripts[name] = "#!/bin/sh\nexit 0\n"
    for name, text in scripts.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return folder


def _ready_register_jobs(workdir: Path) -> Path:
    """A study whose register jobs can start at once: tiny inputs already 'preprocessed' and
    every method's params.yaml in place, so nothing else is submitted. Returns the config."""
    rows = ["subject\tt1w\tlabels"]
    for index, sid in enumerate(SUBJECTS):
        source = workdir / f"{sid}.nii.gz"
        nib.save(nib.Nifti1Image(np.full((4, 4, 4), index + 1, np.int16), np.eye(4)), source)
        os.utime(source, (1e9, 1e9))  # older than its copies below
        rows.append(f"{sid}\t{source.name}\t{source.name}")
        folder = workdir / "results" / "preprocess" / sid
        folder.mkdir(parents=True)
        for kind in ("preproc", "labels"):
            (folder / f"{sid}_{kind}.nii.gz").write_bytes(source.read_bytes())
    (workdir / "cohort.tsv").write_text("\n".join(rows) + "\n")
    for method in ("long", "plain"):
        folder = workdir / "results" / "register" / method
        folder.mkdir(parents=True)
        (folder / "params.yaml").write_text("preset: fast\n")
    config = workdir / "config.yaml"
    config.write_text(SBATCH_CONFIG)
    return config


def _sbatch_options(arguments: list[str]) -> dict[str, str]:
    """The options of one recorded sbatch call that say where a job goes and what it gets."""
    options = {}
    for index, word in enumerate(arguments):
        if word in ("-t", "-p", "-A", "--mem"):
            options[word] = arguments[index + 1]
        elif word.startswith(("--cpus-per-task=", "--gpus=")):
            key, value = word.split("=", 1)
            options[key] = value
    return options


def submitted_register_jobs(tmp_path: Path, *extra: str) -> dict[str, dict[str, str]]:
    """Each method's sbatch options when SBATCH_CONFIG's register jobs go through
    profiles/slurm (plus ``extra`` command-line options) to the fake sbatch."""
    workdir = tmp_path / "study"
    workdir.mkdir()
    config = _ready_register_jobs(workdir)
    fake_bin = _fake_slurm(tmp_path / "bin")
    log = tmp_path / "sbatch.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIR_SLURM_", "SLURM_"))}
    env.update(PATH=os.pathsep.join([str(fake_bin), str(SNAKEMAKE.parent), env["PATH"]]),
               FAKE_SBATCH_LOG=str(log), NIR_SLURM_PARTITION="short",
               NIR_SLURM_GPU_PARTITION="gpu", NIR_SLURM_ACCOUNT="lab42")
    targets = [f"results/register/{m}/{PAIR}/{PAIR}_summary.json" for m in ("long", "plain")]
    result = subprocess.run(
        [str(SNAKEMAKE), *targets, "--snakefile", str(REPO / "workflow/Snakefile"),
         "--directory", str(workdir), "--profile", str(REPO / "profiles/slurm"),
         "--retries", "0", "--slurm-init-seconds-before-status-checks", "1", *extra,
         "--configfile", str(config)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert "fake sbatch: arguments recorded" in output, output[-4000:]
    jobs = {}
    for line in log.read_text().splitlines():
        arguments = json.loads(line)
        comment = arguments[arguments.index("--comment") + 1]
        assert comment.startswith("rule_register_wildcards_"), comment  # nothing else submitted
        jobs[comment.split("_")[3]] = _sbatch_options(arguments)
    assert sorted(jobs) == ["long", "plain"], log.read_text()
    return jobs


def test_config_runtime_threads_and_gpus_reach_sbatch(tmp_path):
    jobs = submitted_register_jobs(tmp_path)
    # the method's own resources ...
    assert jobs["long"] == {"-A": "lab42", "-p": "gpu", "-t": "240", "--mem": "1500",
                            "--cpus-per-task": "3", "--gpus": "1"}
    # ... else the config's resources section (gpu 0: no --gpus at all)
    assert jobs["plain"] == {"-A": "lab42", "-p": "gpu", "-t": "45", "--mem": "1500",
                             "--cpus-per-task": "2"}


def test_command_line_overrides_the_config_on_sbatch(tmp_path):
    jobs = submitted_register_jobs(tmp_path, "--set-resources", "register:runtime=500",
                                   "register:gpu=2", "--set-threads", "register=4")
    for options in jobs.values():
        assert (options["-t"], options["--cpus-per-task"], options["--gpus"]) == ("500", "4", "2")
