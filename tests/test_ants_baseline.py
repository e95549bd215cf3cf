"""The ANTs SyN baseline, run from its own antspyx environment, and ITK-convention round-trips.

ANTs itself checks our warp convention here: antsApplyTransforms (through antspyx) resamples the
moving image through a ``PREFIX_warp.nii.gz`` written by ``nir`` and must reproduce the warped
image that ``nir`` wrote.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nir.baselines.ants_syn import env_python
from nir.cli import main
from nir.evaluation.labels import DEFAULT_STRUCTURES
from nir.spatial.overlap import dice_per_label, mean_dice

pytestmark = pytest.mark.slow

ALIGNED = "derivatives/aligned160/{s}/anat/{s}_space-MNI305_desc-{d}.nii.gz"
QUICK = "antsRegistrationSyNQuick[so]"
ANTS_RESAMPLE = """
import sys, ants
fixed, moving, warp, out = sys.argv[1:]
f = ants.image_read(fixed)
w = ants.apply_transforms(f, ants.image_read(moving), [warp], interpolator="linear")
ants.image_write(w, out)
"""


@pytest.fixture(scope="module")
def pair_3mm(real_cohort, tmp_path_factory) -> dict[str, Path]:
    """sub-02 (moving) and sub-01 (fixed) of aligned160, subsampled to 3 mm."""
    folder = tmp_path_factory.mktemp("pair3mm")
    out = {}
    for sid, role in (("sub-01", "fixed"), ("sub-02", "moving")):
        for desc, kind in (("brain_T1w", ""), ("aseg_dseg", "_labels")):
            img = nib.load(real_cohort / ALIGNED.format(s=sid, d=desc))
            affine = img.affine.copy()
            affine[:3, :3] *= 3
            path = folder / f"{role}{kind}.nii.gz"
            nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[::3, ::3, ::3], affine), path)
            out[f"{role}{kind}"] = path
    return out


@pytest.fixture(scope="module")
def ants_run(pair_3mm, ants_venv, tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("ants") / "pair"
    code = main(["ants-syn", "--fixed", str(pair_3mm["fixed"]), "--moving",
                 str(pair_3mm["moving"]), "--moving-labels", str(pair_3mm["moving_labels"]),
                 "--out", str(prefix), "--ants-python", str(env_python(ants_venv)),
                 "--transform", QUICK, "--threads", "1"])
    assert code == 0
    return prefix


def _labels(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj).astype(np.int32)


def _ants_resample(ants_venv: Path, fixed: Path, moving: Path, warp: Path,
                   out: Path) -> np.ndarray:
    subprocess.run([str(env_python(ants_venv)), "-c", ANTS_RESAMPLE, str(fixed), str(moving),
                    str(warp), str(out)], check=True)
    return nib.load(out).get_fdata()


def test_ants_syn_writes_register_outputs_and_raises_dice(ants_run, pair_3mm) -> None:
    fixed = _labels(pair_3mm["fixed_labels"])
    before = mean_dice(dice_per_label(_labels(pair_3mm["moving_labels"]), fixed,
                                      DEFAULT_STRUCTURES))
    after = mean_dice(dice_per_label(_labels(Path(f"{ants_run}_warped_labels.nii.gz")), fixed,
                                     DEFAULT_STRUCTURES))
    assert after >= before + 0.05, (before, after)
    summary = json.loads(Path(f"{ants_run}_summary.json").read_text())
    assert summary["method"] == "ants" and summary["transform"] == QUICK
    assert summary["seconds"] > summary["seconds_by_stage"]["registration"] > 0
    assert summary["versions"]["antspyx"]
    assert 0.0 <= summary["folding_percent"] < 1.0
    warp = nib.load(f"{ants_run}_warp.nii.gz")
    assert warp.shape == (*nib.load(pair_3mm["fixed"]).shape, 1, 3)
    assert np.allclose(warp.affine, nib.load(pair_3mm["fixed"]).affine)
    assert not list(Path(ants_run).parent.glob(".ants-*"))  # ANTs' scratch folder is gone


def test_ants_resamples_through_a_nir_warp_like_nir(pair_3mm, ants_venv, tmp_path) -> None:
    prefix = tmp_path / "nir"
    params = tmp_path / "params.yaml"
    params.write_text("coarse_iterations: 20\niterations: 10\n")
    assert main(["register", "--fixed", str(pair_3mm["fixed"]), "--moving",
                 str(pair_3mm["moving"]), "--out", str(prefix), "--config", str(params),
                 "--device", "cpu", "--quiet"]) == 0
    ours = nib.load(f"{prefix}_warped.nii.gz").get_fdata()
    theirs = _ants_resample(ants_venv, pair_3mm["fixed"], pair_3mm["moving"],
                            Path(f"{prefix}_warp.nii.gz"), tmp_path / "ants_warped.nii.gz")
    moved = np.abs(ours - nib.load(pair_3mm["moving"]).get_fdata()).mean()
    assert moved > 1.0  # the warp is far from the identity, so agreement below means something
    assert np.abs(ours - theirs).max() <= 1e-3 * np.abs(ours).max()


def test_nir_resamples_through_an_ants_warp_like_ants(ants_run, pair_3mm, ants_venv,
                                                        tmp_path) -> None:
    ours = nib.load(f"{ants_run}_warped.nii.gz").get_fdata()
    theirs = _ants_resample(ants_venv, pair_3mm["fixed"], pair_3mm["moving"],
                            Path(f"{ants_run}_warp.nii.gz"), tmp_path / "ants_warped.nii.gz")
    assert np.abs(ours - theirs).max() <= 1e-3 * np.abs(ours).max()


def test_missing_ants_environment_is_one_clear_error(pair_3mm, tmp_path, capsys) -> None:
    code = main(["ants-syn", "--fixed", str(pair_3mm["fixed"]), "--moving",
                 str(pair_3mm["moving"]), "--out", str(tmp_path / "x"), "--ants-python",
                 str(tmp_path / "nowhere" / "bin" / "python")])
    err = capsys.readouterr().err
    assert code == 2 and "nir ants-env" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_killed_ants_run_is_one_line_and_leaves_nothing(pair_3mm, tmp_path, capsys) -> None:
    python = tmp_path / "python"  # stands in for an antspyx interpreter the scheduler kills
    python.write_text("#!/bin/sh\necho 'Registering...'\nkill -TERM $$\n")
    python.chmod(0o755)
    out = tmp_path / "out"
    code = main(["ants-syn", "--fixed", str(pair_3mm["fixed"]), "--moving",
                 str(pair_3mm["moving"]), "--out", str(out / "x"), "--ants-python", str(python)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "killed by signal 15" in err and "moving.nii.gz" in err
    assert not out.exists() or list(out.iterdir()) == []
