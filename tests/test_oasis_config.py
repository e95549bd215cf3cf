"""config/oasis.yaml, its sample sheet, pairs file and seg35 label table, planned by the workflow
(validation and a dry run) on a fake OASIS tree of small synthetic volumes: seconds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
OASIS_FILES = ("oasis.yaml", "oasis_samples.tsv", "oasis_pairs.tsv", "oasis_seg35.tsv")
SUBJECTS = ("0001", "0002", "0003", "0004")
SEG35 = ",".join(str(i) for i in range(1, 36))


def _study(tmp_path: Path) -> Path:
    """A study folder holding the shipped OASIS config files under config/, as a deployment
    or the repository root does."""
    (tmp_path / "config").mkdir()
    for name in OASIS_FILES:
        shutil.copy(REPO / "config" / name, tmp_path / "config" / name)
    return tmp_path


def _fake_oasis(root: Path) -> None:
    """neurite-oasis' layout (OASIS_OAS1_NNNN_MR1/aligned_norm, aligned_seg35) with small
    synthetic volumes: an intensity ramp and the 35 seg35 labels in slabs."""
    rng = np.random.default_rng(0)
    for number in SUBJECTS:
        folder = root / f"OASIS_OAS1_{number}_MR1"
        folder.mkdir(parents=True)
        image = rng.random((10, 12, 14)).astype(np.float32)
        labels = (np.arange(10 * 12 * 14).reshape(10, 12, 14) % 36).astype(np.int16)
        nib.save(nib.Nifti1Image(image, np.eye(4)), str(folder / "aligned_norm.nii.gz"))
        nib.save(nib.Nifti1Image(labels, np.eye(4)), str(folder / "aligned_seg35.nii.gz"))


def _dry_run(study: Path) -> subprocess.CompletedProcess:
    snakemake = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "PATH": f"{snakemake.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(snakemake), "-s", str(REPO / "workflow" / "Snakefile"), "-d", str(study),
         "--configfile", "config/oasis.yaml", "--cores", "2", "-n", "-p"],
        cwd=study, capture_output=True, text=True, timeout=300, env=env)


def test_oasis_config_plans_the_fig5_pair_with_the_seg35_table(tmp_path: Path) -> None:
    study = _study(tmp_path)
    missing = _dry_run(study)  # before the data is in place: one error naming the first file
    assert missing.returncode != 0
    assert re.search(r"oasis/OASIS_OAS1_0001_MR1/aligned_\w+\.nii\.gz: input file of subject "
                     r"'OAS1_0001_MR1' does not exist", missing.stdout + missing.stderr)

    _fake_oasis(study / "oasis")
    done = _dry_run(study)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.MULTILINE))
    assert jobs["copy_preprocessed"] == "4" and jobs["register"] == "4"
    assert jobs["tables"] == jobs["figures"] == "1"
    registers = [line for line in done.stdout.splitlines() if "nir register " in line]
    assert any("OAS1_0002_MR1_to_OAS1_0001_MR1" in line for line in registers)  # Fig 5
    for line in registers:  # convergence ids and scoring: all 35 seg35 labels, named by table
        assert line.count(f"--labels-set {SEG35} ") == 2
        assert "nir evaluate " in line and "--label-table config/oasis_seg35.tsv " in line
    figures = next(line for line in done.stdout.splitlines() if "nir figures --tables" in line)
    assert "--label-table config/oasis_seg35.tsv" in figures
