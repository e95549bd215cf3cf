"""Every documented bad input gives one clear error naming the file, and no output."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from nir.cli import main
from nir.engine.fit import LatticeStep
from nir.engine.params import load_params
from nir.errors import NirInputError
from nir.spatial.io import save_volume


@pytest.fixture
def good(write_nifti):
    rng = np.random.default_rng(0)
    img = rng.random((12, 12, 12)).astype(np.float32)
    return write_nifti("good.nii.gz", img), write_nifti("good2.nii.gz", img[::-1].copy())


def _register(capsys, tmp_path, fixed, moving, labels=None) -> tuple[int, str]:
    argv = ["register", "--fixed", str(fixed), "--moving", str(moving), "--out",
            str(tmp_path / "out" / "pair"), "--iterations", "2", "--device", "cpu", "--quiet"]
    if labels is not None:
        argv += ["--moving-labels", str(labels)]
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case,problem", [
    ("unreadable", "unreadable"),
    ("missing", "does not exist"),
    ("four_d", "expected a 3D volume"),
    ("nan", "NaN"),
    ("zeros", "all zero"),
])
def test_bad_moving_image(case, problem, good, tmp_path, write_nifti, capsys) -> None:
    fixed, _ = good
    if case == "unreadable":
        bad = tmp_path / "bad.nii.gz"
        bad.write_bytes(b"\x1f\x8b not really a nifti")
    elif case == "missing":
        bad = tmp_path / "nowhere.nii.gz"
    elif case == "four_d":
        bad = write_nifti("bad.nii.gz", np.ones((6, 6, 6, 2), np.float32))
    elif case == "nan":
        data = np.ones((12, 12, 12), np.float32)
        data[3, 3, 3] = np.nan
        bad = write_nifti("bad.nii.gz", data)
    else:
        bad = write_nifti("bad.nii.gz", np.zeros((12, 12, 12), np.float32))
    code, err = _register(capsys, tmp_path, fixed, bad)
    assert code == 2
    assert str(bad) in err and problem in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("case", ["shape", "affine"])
def test_mismatched_labels(case, good, tmp_path, write_nifti, capsys) -> None:
    fixed, moving = good
    if case == "shape":
        labels = write_nifti("labels.nii.gz", np.ones((10, 12, 12), np.int16))
        problem = "differs from image shape"
    else:
        labels = write_nifti("labels.nii.gz", np.ones((12, 12, 12), np.int16),
                             np.diag([2.0, 1, 1, 1]))
        problem = "affine differs"
    code, err = _register(capsys, tmp_path, fixed, moving, labels)
    assert code == 2 and str(labels) in err and problem in err


def test_bad_parameter_file(good, tmp_path, capsys) -> None:
    fixed, moving = good
    cfg = tmp_path / "params.yaml"
    cfg.write_text("mode: sideways\n")
    code = main(["register", "--fixed", str(fixed), "--moving", str(moving), "--out",
                 str(tmp_path / "o"), "--config", str(cfg), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and str(cfg) in err and "mode must be one of" in err
    with pytest.raises(ValueError, match="unknown parameter"):
        cfg.write_text("itrations: 3\n")
        load_params(cfg)


@pytest.mark.parametrize("line,problem", [
    ("lr_final_ratio: -0.5", "lr_final_ratio must be in (0, 1]"),
    ("fourier_sigma: 0.0", "fourier_sigma and fine_fourier_sigma must be > 0"),
    ("folding_weight: -1.0", "folding_weight, volume_weight, smoothness_weight and "
                             "refine_smoothness_weight must be >= 0"),
    ("refine_smoothness_weight: -0.1", "refine_smoothness_weight must be >= 0"),
    ("refine_iterations: -1", "refine_iterations must be >= 0"),
    ("refine_ncc_window: 10", "refine_ncc_window must be odd"),
    ("refine_batch_fraction: 0.0", "refine_batch_fraction must be in (0, 1]"),
    ("refine_lattice_mm: 0.0", "refine_spacing_mm and refine_lattice_mm must be > 0"),
    ("refine_iterations: 10\nsampler: downsize", "needs sampler: hybrid and field: lattice"),
    ("output_scale: .nan", "output_scale must be > 0"),
    ("random_points: 0", "random_points must be >= 1"),
])
def test_out_of_range_parameters_are_refused(line, problem, tmp_path) -> None:
    cfg = tmp_path / "params.yaml"
    cfg.write_text(line + "\n")
    with pytest.raises(NirInputError, match=re.escape(problem)) as caught:
        load_params(cfg)
    assert str(cfg) in str(caught.value)


def test_a_diverging_fit_stops_with_one_line_naming_the_pair(good, tmp_path, capsys,
                                                              monkeypatch) -> None:
    fixed, moving = good
    nan = torch.tensor(float("nan"), requires_grad=True)
    monkeypatch.setattr(LatticeStep, "__call__", lambda self, batch, log: nan * 1.0)
    code, err = _register(capsys, tmp_path, fixed, moving)
    assert code == 1
    assert err.count("\n") == 1 and "diverged" in err
    assert str(moving) in err and str(fixed) in err and "iteration 1" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch) -> None:
    import nibabel as nib

    from nir.spatial import io

    def boom(*_args, **_kwargs):
        raise OSError("disk full")

    class FullDisk:  # the gzip stream fails once its file is open
        compress = flush = boom

    monkeypatch.setattr(nib, "save", boom)  # .nii goes through nibabel
    monkeypatch.setattr(io.zlib, "compressobj", lambda *_args: FullDisk())  # .nii.gz: ours
    for name in ("x.nii", "x.nii.gz"):
        with pytest.raises(OSError, match="disk full"):
            save_volume(np.ones((3, 3, 3), np.float32), np.eye(4), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_umask_permissions(tmp_path) -> None:
    """Atomic writes go through mkstemp (0600); finished files must be group/world readable."""
    import os

    old = os.umask(0o022)
    try:
        target = save_volume(np.ones((3, 3, 3), np.float32), np.eye(4), tmp_path / "x.nii.gz")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
