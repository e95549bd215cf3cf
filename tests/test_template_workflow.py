"""The template build's one plan (nir.study.template_plan) through both of its drivers: what the
workflow's jobs ask for (dry runs), and (slow) a tiny study through the workflow and through
``nir template``: which files each subject keeps per round, their bytes, and the same template
from both."""

from __future__ import annotations

import gzip
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

from nir.cli import main
from nir.spatial.io import save_volume

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
SUBJECTS = ("sub-01", "sub-02", "sub-03", "sub-04")
SHAPE = (16, 16, 16)
AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])
AFFINE[:3, 3] = -30.0
VOXELS = int(np.prod(SHAPE))
NIFTI_HEADER = 352  # bytes before the data of a .nii: the header (348) and the extension flag
# a short fast-preset registration: the test is about files, not accuracy
PARAMS = {"preset": "fast", "coarse_iterations": 10, "iterations": 10}


def _snakemake(workdir: Path, *configs: Path, extra: tuple[str, ...] = (),
               timeout: float = 900) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir),
               "--configfile", *map(str, configs), "--cores", "2", *extra]
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                   os.environ.get("PATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def _cohort(folder: Path, design: bool = False) -> tuple[list[Path], list[Path], Path]:
    """Four 4 mm 'brains' (a textured ellipsoid, each shifted and stretched a little) with
    aseg-numbered labels (white matter 2/41 left/right, a hippocampus 17), and their sheet
    (with ``design``, also group and age columns)."""
    folder.mkdir(parents=True, exist_ok=True)
    world = nib.affines.apply_affine(AFFINE, np.indices(SHAPE).reshape(3, -1).T).reshape(
        *SHAPE, 3)
    images, labels, rows = [], [], ["subject\tt1w\tlabels" + "\tgroup\tage" * design]
    for index, sid in enumerate(SUBJECTS):
        centre = np.array([1.5 * index - 2, 1.0 - index, 0.5 * index])
        radius = np.array([20.0 + index, 22.0, 18.0 - 0.5 * index])
        r = np.sqrt((((world - centre) / radius) ** 2).sum(-1))
        inside = r < 1
        image = np.where(inside, 0.6 + 0.3 * np.sin(world[..., 0] / 5) * np.cos(world[..., 1] / 7),
                         0).astype(np.float32)
        label = np.where(inside, np.where(world[..., 0] < centre[0], 2, 41), 0)
        label[inside & (np.linalg.norm(world - centre - [-8, 0, 0], axis=-1) < 6)] = 17
        images.append(save_volume(image, AFFINE, folder / f"{sid}.nii.gz"))
        labels.append(save_volume(label.astype(np.int32), AFFINE, folder / f"{sid}_dseg.nii.gz"))
        extra = f"\t{'ab'[index % 2]}\t{60 + index}" if design else ""
        rows.append(f"{sid}\t{sid}.nii.gz\t{sid}_dseg.nii.gz{extra}")
    sheet = folder / "cohort.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return images, labels, sheet


def _config(folder: Path, sheet: Path, **sections) -> Path:
    config = {"cohort": str(sheet), "preprocessed": True, "pairs": {"mode": "none"},
              "methods": {"tpl": PARAMS}, "device": "cpu",
              "template": {"build": True, "iterations": 1, "initial": "mean"}}
    for key, value in sections.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config \
            else value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- what the jobs ask for ------------------------------------------------------------------

def _jobs(output: str) -> list[dict]:
    """Every job of a dry-run printout (``-p``): rule, resources, threads and shell command."""
    jobs = []
    for block in output.split("\n\n"):
        lines = [line.strip() for line in block.splitlines()]
        head = [line for line in lines if line.startswith("rule ") and line.endswith(":")]
        if not head:
            continue
        job = {"rule": head[0][5:-1], "threads": 1, "resources": {}, "shell": ""}
        for line in lines:
            if line.startswith("resources:"):
                pairs = (item.split("=", 1) for item in line[len("resources:"):].split(", "))
                job["resources"] = {key.strip(): value.strip() for key, value in pairs}
            elif line.startswith("threads:"):
                job["threads"] = int(line.split(":")[1])
            elif line.startswith("Shell command:"):
                job["shell"] = line[len("Shell command:"):]
            elif line.startswith("wildcards:"):
                job["wildcards"] = line
        jobs.append(job)
    return jobs


def test_jobs_take_their_resources_and_only_registrations_may_use_a_gpu(tmp_path) -> None:
    _, _, sheet = _cohort(tmp_path, design=True)
    config = _config(tmp_path, sheet, preprocessed=False, device="auto",
                     methods={"tpl": {**PARAMS, "resources": {"threads": 2, "runtime": 240,
                                                              "mem_mb": 1500, "gpu": 1}}},
                     preprocess={"skull_strip": "none",
                                 "resources": {"threads": 2, "mem_mb": 2500, "runtime": 20}},
                     tbm={"enabled": True, "covariates": ["age"],
                          "resources": {"threads": 2, "mem_mb": 6000, "runtime": 90}})
    jobs = _jobs(_snakemake(tmp_path, config, extra=("-n", "-p", "--cores", "8")).stdout)
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    assert len(by_rule["template_register"]) == len(by_rule["template_register_final"]) == 4
    for rule in ("template_register", "template_register_final"):
        for job in by_rule[rule]:  # the template method's resources, as a register job's
            assert (job["resources"]["runtime"], job["resources"]["mem_mb"],
                    job["resources"]["gpu"]) == ("240", "1500", "1"), job
            assert job["threads"] == 2 and "--threads 2" in job["shell"]
            assert "--device auto" in job["shell"] and "--warp-dtype float32" in job["shell"]
            # inverse warps in the last round only: nothing reads an earlier round's
            assert ("--inverse" in job["shell"]) == (rule == "template_register_final"), job
    for rule, expected in (("preprocess", ("20", "2500")), ("tbm_glm", ("90", "6000"))):
        for job in by_rule[rule]:
            assert (job["resources"]["runtime"], job["resources"]["mem_mb"]) == expected, job
            assert "gpu" not in job["resources"] and job["threads"] == 2, job
    assert len(by_rule["preprocess"]) == 4
    assert all("--device cpu" in job["shell"] for job in by_rule["preprocess"])


# --- a tiny template study: the disk per subject and round ----------------------------------

def _payload(path: Path) -> int:
    """Bytes of a .nii.gz once decompressed, less its header: voxels x bytes per voxel."""
    return len(gzip.decompress(path.read_bytes())) - NIFTI_HEADER


def _kept(template: Path) -> dict[tuple[str, str], dict[str, int]]:
    """{(round, subject): {file name: bytes on disk}} of every registration of a template
    build (``template``: its output folder)."""
    kept = {}
    for folder in sorted(template.glob("iter-*/register/*")):
        kept[folder.parts[-3], folder.name] = {p.name: p.stat().st_size
                                               for p in folder.iterdir()}
    return kept


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> dict:
    """The same four subjects through the workflow twice (the `outputs` defaults; everything
    kept, intermediate rounds too, warps in int16) and through ``nir template``."""
    base = tmp_path_factory.mktemp("template")
    images, labels, sheet = _cohort(base / "data")
    runs = {}
    for name, sections in (
            ("defaults", {}),
            ("everything", {"outputs": {"warp": True, "jacobian": True, "warp_dtype": "int16"},
                            "template": {"keep_rounds": True}})):
        workdir = base / name
        workdir.mkdir()
        _snakemake(workdir, _config(workdir, sheet, **sections))
        runs[name] = workdir / "results" / "template"
    params = base / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    cli = base / "cli"
    assert main(["template", "--images", *map(str, images), "--labels", *map(str, labels),
                 "--out", str(cli), "--iterations", "1", "--initial", "mean", "--config",
                 str(params), "--seed", "0", "--threads", "1", "--device", "cpu",
                 "--quiet"]) == 0
    runs["cli"] = cli
    return runs


SMALL = {"summary.json", "warped.nii.gz", "warped_labels.nii.gz"}
BIG = {"warp.nii.gz", "jacobian.nii.gz"}


@pytest.mark.slow
def test_each_round_keeps_what_the_outputs_section_says(tiny_study) -> None:
    defaults, everything = _kept(tiny_study["defaults"]), _kept(tiny_study["everything"])
    assert sorted(defaults) == sorted(everything) == [
        (f"iter-{k:02d}", s) for k in (0, 1) for s in SUBJECTS]
    for (iteration, subject), files in defaults.items():
        # warps and det J maps are deleted once read; the inverse was never written before
        # the last round, and the last round's is deleted with its warp (outputs.warp: false)
        assert {name.split("_", 1)[-1] for name in files} == SMALL, (iteration, subject)
        assert all(size > 0 for size in files.values())
    for (iteration, subject), files in everything.items():
        names = {name.split("_", 1)[-1] for name in files}
        last = iteration == "iter-01"
        assert names == SMALL | BIG | ({"inverse_warp.nii.gz"} if last else set()), names
        folder = tiny_study["everything"] / iteration / "register" / subject
        for warp in ("warp", "inverse_warp") if last else ("warp",):
            path = folder / f"{subject}_{warp}.nii.gz"
            assert nib.load(path).get_data_dtype() == np.int16
            assert _payload(path) == 2 * 3 * VOXELS  # 16-bit: half a float32 warp's bytes
        assert _payload(folder / f"{subject}_jacobian.nii.gz") == 4 * VOXELS
        if not last:  # onto the same initial template: the same images as with the defaults
            for name in SMALL - {"summary.json"}:
                assert files[f"{subject}_{name}"] == \
                    defaults[iteration, subject][f"{subject}_{name}"]
    template = tiny_study["defaults"]
    for name in ("template.nii.gz", "template_labels.nii.gz", "template_brainmask.nii.gz",
                 "progress.tsv", "iter-00/round.json", "iter-01/round.json",
                 "iter-01/update.json", "qc/template_qc.csv", "qc/template_qc.md",
                 *(f"qc/{s}.png" for s in SUBJECTS)):
        assert (template / name).stat().st_size > 0, name


@pytest.mark.slow
def test_nir_template_runs_the_same_rounds_as_the_workflow(tiny_study) -> None:
    workflow, cli = tiny_study["defaults"], tiny_study["cli"]
    for name in ("iter-01/template.nii.gz", "template.nii.gz", "template_labels.nii.gz"):
        ours, theirs = nib.load(cli / name), nib.load(workflow / name)
        assert np.array_equal(np.asarray(ours.dataobj), np.asarray(theirs.dataobj)), name
        assert np.allclose(ours.affine, theirs.affine)
    for k in (0, 1):
        assert json.loads((cli / f"iter-{k:02d}/round.json").read_text()) == \
            json.loads((workflow / f"iter-{k:02d}/round.json").read_text())
    assert pd.read_csv(cli / "progress.tsv", sep="\t").equals(
        pd.read_csv(workflow / "progress.tsv", sep="\t"))
    # the same QC of the last round: the workflow's template_qc job, nir template's OUT/qc
    qc = pd.read_csv(cli / "qc" / "template_qc.csv")
    assert qc.equals(pd.read_csv(workflow / "qc" / "template_qc.csv"))
    assert qc["subject"].tolist() == list(SUBJECTS) and qc["dice"].between(0.5, 1).all()
    for sid in SUBJECTS:
        assert (cli / "qc" / f"{sid}.png").stat().st_size > 10_000
    # the CLI keeps the last round whole and drops the earlier round's warps and det J maps
    for (iteration, subject), files in _kept(cli).items():
        names = {name.split("_", 1)[-1] for name in files}
        last = SMALL | BIG | {"inverse_warp.nii.gz"}
        assert names == (last if iteration == "iter-01" else SMALL), (iteration, subject)
