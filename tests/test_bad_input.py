"""Every documented bad input gives one clear error naming the file, and no output."""

from __future__ import annotations

import numpy as np
import pytest

from nir.cli import main
from nir.engine.params import load_params
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
