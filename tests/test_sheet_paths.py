"""Sample sheets whose file names hold shell syntax or spaces: the workflow must use the files and
never execute their names (issue 15). Tiny images, the copy step only or a dry run: seconds."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
HOSTILE = {"sub-01": ("inj/a$(touch PWNED).nii.gz", "inj/a`touch PWNED`_dseg.nii.gz"),
           "sub-02": ("inj/b c.nii.gz", "inj/b c;touch PWNED_dseg.nii.gz")}
MASK = "inj/m $(touch PWNED)'.nii.gz"


def _write(path: Path, value: int) -> Path:
    """A distinct 4x4x4 image (its voxels hold ``value``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), value, np.int16), np.eye(4)), str(path))
    return path


def _study(tmp_path: Path, preprocessed: bool, mask: bool = False) -> Path:
    """A study folder with hostile file names, its sheet and config; returns the config."""
    rows = ["subject\tt1w\tlabels" + ("\tbrainmask" if mask else "")]
    for index, (sid, (t1w, labels)) in enumerate(HOSTILE.items()):
        _write(tmp_path / t1w, 10 * index + 1)
        _write(tmp_path / labels, 10 * index + 2)
        extra = ""
        if mask:
            extra = f"\t{MASK}" if sid == "sub-01" else "\tn/a"
            _write(tmp_path / MASK, 1)
        rows.append(f"{sid}\t{t1w}\t{labels}{extra}")
    (tmp_path / "cohort.tsv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"cohort: cohort.tsv\npreprocessed: {str(preprocessed).lower()}\n"
                      "pairs: {mode: template}\nmethods: {nir: {preset: fast}}\n")
    return config


def _snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(SNAKEMAKE), *args, "--snakefile", str(REPO / "workflow/Snakefile"), "--directory",
         str(workdir), "--cores", "1", "--configfile", str(config)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _nothing_executed(workdir: Path) -> None:
    assert not list(workdir.rglob("PWNED*")), "a file name was executed by the shell"
    assert not (REPO / "PWNED").exists()


def test_copy_step_copies_the_named_files_and_runs_nothing(tmp_path: Path) -> None:
    config = _study(tmp_path, preprocessed=True)
    targets = [f"results/preprocess/{sid}/{sid}_{kind}.nii.gz"
               for sid in HOSTILE for kind in ("preproc", "labels")]
    _snakemake(tmp_path, config, *targets)
    for sid, (t1w, labels) in HOSTILE.items():
        folder = tmp_path / "results/preprocess" / sid
        assert (folder / f"{sid}_preproc.nii.gz").read_bytes() == (tmp_path / t1w).read_bytes()
        assert (folder / f"{sid}_labels.nii.gz").read_bytes() == (tmp_path / labels).read_bytes()
    _nothing_executed(tmp_path)


def _preprocess_commands(output: str, workdir: Path) -> dict[str, dict[str, Path]]:
    """The file options of each ``nir preprocess`` command a dry run prints, by subject, as
    the shell would split them (relative paths taken in ``workdir``)."""
    commands = {}
    for line in output.splitlines():
        if "nir preprocess " in line:
            words = shlex.split(line.split("nir preprocess ", 1)[1].split(" > ", 1)[0])
            files = {word: workdir / words[i + 1] for i, word in enumerate(words)
                     if word in ("--t1w", "--labels", "--brainmask", "--out")}
            commands[files["--out"].name] = files
    return commands


def test_preprocess_rule_passes_hostile_names_and_the_brainmask_as_single_words(
        tmp_path: Path) -> None:
    config = _study(tmp_path, preprocessed=False, mask=True)
    output = _snakemake(tmp_path, config, "--dry-run", "--printshellcmds",
                        *(f"results/preprocess/{sid}/{sid}_preproc.nii.gz" for sid in HOSTILE))
    commands = _preprocess_commands(output.stdout, tmp_path)
    assert sorted(commands) == sorted(HOSTILE), output.stdout[-3000:]
    for sid, (t1w, labels) in HOSTILE.items():
        assert commands[sid]["--t1w"] == tmp_path / t1w
        assert commands[sid]["--labels"] == tmp_path / labels
    assert commands["sub-01"]["--brainmask"] == tmp_path / MASK
    assert "--brainmask" not in commands["sub-02"]
    _nothing_executed(tmp_path)
