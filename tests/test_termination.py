"""SIGTERM and SIGINT for every ``nir`` verb, from one place (``nir.cli.main``): a killed
``nir preprocess`` (mid-computation and mid-write) or ``nir template`` removes its temporary
files and exits 1 with one line."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nir.cli import main
from nir.commands import template
from nir.spatial.io import atomic_write, save_volume
from tests.interrupt import SLOW_WRITE, terminate

# one 8 mm level of 5 steps instead of the default 4 and 2 mm levels: the affine is not what
# these tests are about
CHEAP_AFFINE = textwrap.dedent("""
    from nir.preprocess import pipeline
    real_affine = pipeline.register_affine
    pipeline.register_affine = lambda *args: real_affine(*args[:5], (8.0,), (5,), *args[7:])
""")
# the affine alignment starts (marker) and takes a minute
SLOW_AFFINE = textwrap.dedent("""
    from nir.preprocess import pipeline

    def register_affine(*args):
        marker.touch()
        time.sleep(60)

    pipeline.register_affine = register_affine
""")


def _brain(folder: Path) -> tuple[Path, Path]:
    """A 4 mm skull-stripped 'brain' (a textured 68 x 84 x 68 mm ellipsoid) and its labels."""
    shape = (24, 28, 24)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) * 2.0
    world = nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T)
    inside = (np.sqrt(((world / [34.0, 42.0, 34.0]) ** 2).sum(-1)) < 1).reshape(shape)
    texture = (100 + 20 * np.sin(world[:, 0] / 6)).reshape(shape)
    t1w = save_volume(np.where(inside, texture, 0).astype(np.float32), affine,
                      folder / "t1w.nii.gz")
    labels = save_volume(inside.astype(np.int32) * 2, affine, folder / "aseg.nii.gz")
    return t1w, labels


@pytest.mark.parametrize(("stage", "sig"), [("affine", signal.SIGTERM),
                                            ("affine", signal.SIGINT),
                                            ("write", signal.SIGTERM)])
def test_killed_preprocess_removes_temporaries_and_exits_with_one_line(tmp_path, stage,
                                                                       sig) -> None:
    t1w, labels = _brain(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    argv = ["preprocess", "--t1w", str(t1w), "--labels", str(labels), "--out", str(out / "s"),
            "--skull-strip", "none", "--no-bias-correct", "--grid-shape", "16", "16", "16",
            "--grid-spacing", "8", "--device", "cpu"]
    hook = SLOW_AFFINE if stage == "affine" else CHEAP_AFFINE + SLOW_WRITE
    status, err, present = terminate(tmp_path, hook, argv, out, sig)
    assert status == 1
    assert err.strip().splitlines() == [f"nir preprocess: error: terminated by {sig.name}; "
                                        "temporary files removed"]
    left = sorted(p.name for p in out.iterdir())
    assert not [name for name in left if name.startswith(".")], left  # no temporary file
    assert "s_summary.json" not in left  # the summary, written last, marks a complete run
    if stage == "affine":
        assert left == []  # killed before writing anything
    else:  # the signal came while a temporary output was on disk
        assert [name for name in present if name.startswith(".s_")], present


def test_killed_template_removes_temporaries_and_exits_with_one_line(tmp_path, monkeypatch,
                                                                     capsys) -> None:
    """SIGTERM while the first registration of ``nir template`` writes its output."""
    images = []
    for index in range(2):
        data = np.zeros((8, 8, 8), np.float32)
        data[2 + index:6, 2:6, 2:6] = 1.0
        images.append(save_volume(data, np.eye(4), tmp_path / f"s{index}.nii.gz"))

    def killed_while_writing(_fixed, _moving, prefix, *_args, **_kwargs):
        # without nir's handler the signal would end pytest itself
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "SIGTERM not handled"
        with atomic_write(f"{prefix}_warp.nii.gz") as tmp:
            tmp.write_bytes(b"half a warp")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(template, "register_files", killed_while_writing)
    out = tmp_path / "out"
    assert main(["template", "--images", *map(str, images), "--out", str(out), "--iterations",
                 "1", "--device", "cpu", "--quiet"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "nir template: error: terminated by SIGTERM; temporary files removed"]
    assert not [p for p in out.rglob(".*")]  # the half-written warp's temporary is gone
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the command
