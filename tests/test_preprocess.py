"""Tests of ``nir preprocess``: affine recovery, real brain masks, and bad-input handling."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.linalg import polar
from scipy.spatial.transform import Rotation

from nir.cli import main
from nir.preprocess.affine import register_affine
from nir.preprocess.brain_extraction import close_with_ball
from nir.preprocess.resample import resample_image, resample_labels
from nir.preprocess.template import load_template
from nir.preprocess.transform_files import read_affine_text

DATA = Path(__file__).resolve().parents[2] / "shared/data/fs-cohort"


def _downsampled_template(step: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tpl = load_template()
    affine = tpl.affine.copy()
    affine[:3, :3] *= step
    return tpl.image[::step, ::step, ::step], tpl.mask[::step, ::step, ::step], affine


def _known_affine() -> np.ndarray:
    """Template world -> 'native' world: 10 degree rotation, 5 % scaling, 5 mm shift."""
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", [10, -6, 4], degrees=True).as_matrix() * 1.05
    m[:3, 3] = [5.0, -3.0, 2.0]
    return m


def test_synthetic_affine_is_recovered_within_1mm():
    fixed, mask, affine = _downsampled_template()
    truth = _known_affine()
    # moving(y) = fixed(truth^-1 y): the moving image is the template carried by ``truth``.
    moving = resample_image(fixed, affine, np.linalg.inv(truth), fixed.shape, affine)
    result = register_affine(fixed, affine, mask, moving, affine)
    brain = np.argwhere(mask).astype(float)
    world = np.c_[brain, np.ones(len(brain))] @ affine.T
    error = np.linalg.norm(world @ (result.matrix - truth).T, axis=1)
    assert error.max() < 1.0, f"max point error {error.max():.2f} mm"
    residual, _ = polar(result.matrix[:3, :3] @ np.linalg.inv(truth[:3, :3]))
    assert np.degrees(Rotation.from_matrix(residual).magnitude()) < 1.0
    assert result.ncc > 0.95


def test_label_resampling_matches_one_hot_argmax():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(12, 13, 14))
    affine = np.diag([1.0, 1.2, 0.9, 1.0])
    to_native = _known_affine()
    to_native[:3, 3] = [0.4, 0.3, -0.2]
    grid = np.eye(4)
    grid[:3, 3] = [2.0, 2.0, 2.0]
    out = resample_labels(labels, affine, to_native, (8, 9, 10), grid)
    scores = np.stack([resample_image((labels == v).astype(np.float32), affine, to_native,
                                      (8, 9, 10), grid) for v in range(4)])
    expected = scores.argmax(axis=0)
    inside = scores.sum(axis=0) > 0.999  # all 8 neighbours inside: no zero padding involved
    assert inside.mean() > 0.5
    assert (out == expected)[inside].mean() > 0.999
    assert set(np.unique(out)) <= {0, 1, 2, 3}


@pytest.mark.parametrize("spacing, gap_mm, radius_mm, bridged", [
    ((1.0, 1.0, 1.0), 6.0, 4.0, True),    # a 6 mm gap fits inside an 8 mm ball
    ((1.0, 1.0, 1.0), 6.0, 2.0, False),   # but not inside a 4 mm one
    ((1.0, 1.0, 2.0), 6.0, 2.0, False),   # 3 voxels of 2 mm: still 6 mm, still too wide
    ((1.0, 1.0, 2.0), 6.0, 4.0, True),
])
def test_ball_closing_bridges_gaps_narrower_than_its_diameter(spacing, gap_mm, radius_mm, bridged):
    step = spacing[2]
    gap = round(gap_mm / step)
    shape = (30, 30, gap + 2 * round(10 / step))
    mask = np.zeros(shape, dtype=bool)
    mask[5:25, 5:25, :round(10 / step)] = True
    mask[5:25, 5:25, round(10 / step) + gap:] = True
    closed = close_with_ball(mask, np.asarray(spacing), radius_mm)
    assert (closed >= mask).all()
    assert closed[15, 15, round(10 / step) + gap // 2] == bridged
    assert not closed[0, 0, 0] and not closed[27, 27, 0]  # nothing grows outside the slabs


def _subject(sub: str = "sub-03") -> dict[str, Path]:
    if not DATA.exists():
        pytest.skip("real data ../shared/data/fs-cohort absent")
    fs = DATA / "derivatives/freesurfer" / sub / "anat"
    return {"t1w": DATA / sub / "anat" / f"{sub}_T1w.nii.gz",
            "brain": fs / f"{sub}_desc-brain_T1w.nii.gz",
            "aseg": fs / f"{sub}_desc-aseg_dseg.nii.gz",
            "xfm": fs / f"{sub}_from-T1w_to-MNI305_talairach.xfm"}


def _talairach(path: Path) -> np.ndarray:
    """The 4x4 RAS matrix of a MINC linear transform file (FreeSurfer's talairach.xfm)."""
    numbers = path.read_text().split("Linear_Transform =", 1)[1].replace(";", " ").split()
    return np.vstack([np.asarray(numbers[:12], dtype=float).reshape(3, 4), [0, 0, 0, 1]])


def test_real_subject_mask_dice_and_outputs(tmp_path):
    files = _subject()
    prefix = tmp_path / "sub-03"
    status = main(["preprocess", "--t1w", str(files["t1w"]), "--labels", str(files["aseg"]),
                   "--out", str(prefix), "--device", "cpu"])
    assert status == 0
    mask_img = nib.load(f"{prefix}_brainmask.nii.gz")
    t1w_img = nib.load(files["t1w"])
    assert mask_img.get_data_dtype() == np.uint8
    assert np.allclose(mask_img.affine, t1w_img.affine)
    mask = np.asarray(mask_img.dataobj) > 0
    ref = np.asarray(nib.load(files["brain"]).dataobj) > 0
    dice = 2 * (mask & ref).sum() / (mask.sum() + ref.sum())
    assert dice >= 0.95, f"mask Dice {dice:.3f}"
    preproc = nib.load(f"{prefix}_preproc.nii.gz")
    assert preproc.shape == (160, 192, 224)
    data = preproc.get_fdata()
    assert data.min() >= 0 and data.max() <= 1 and data.max() > 0.9
    labels = np.asarray(nib.load(f"{prefix}_labels.nii.gz").dataobj)
    assert {2, 17, 41, 53} <= set(np.unique(labels))
    # FreeSurfer's talairach.xfm (native -> MNI305) undoes our affine (template -> native), up to
    # the small MNI152-2009 / MNI305 difference: the composition is near identity. The subject's
    # head is 30 % smaller than the template by volume (det xfm 1.30), so an affine that missed
    # the scaling would fail both checks.
    composed = _talairach(files["xfm"]) @ read_affine_text(f"{prefix}_affine.txt")
    assert abs(np.linalg.det(composed[:3, :3]) - 1) < 0.05, composed
    tpl = load_template()
    brain = np.argwhere(tpl.mask)[::20].astype(float)
    world = np.c_[brain, np.ones(len(brain))] @ tpl.affine.T
    error = np.linalg.norm(world @ (composed - np.eye(4)).T, axis=1)
    assert error.max() < 6.0, f"template brain points move up to {error.max():.1f} mm"
    itk = Path(f"{prefix}_affine_itk.txt").read_text()
    assert itk.startswith("#Insight Transform File V1.0")
    assert Path(f"{prefix}_qc.png").stat().st_size > 10_000
    assert Path(f"{prefix}_summary.json").exists()


def _write(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def _brain_like(shape: tuple[int, int, int] = (20, 22, 24)) -> np.ndarray:
    idx = np.indices(shape).astype(float)
    centre = (np.array(shape)[:, None, None, None] - 1) / 2
    return (((idx - centre) ** 2).sum(axis=0) < 64).astype(np.float32) * 100


@pytest.mark.parametrize("case", ["unreadable", "4d", "nan", "zeros", "label_shape"])
def test_bad_input_gives_status_2_and_no_outputs(tmp_path, capsys, case):
    good = _write(tmp_path / "good.nii.gz", _brain_like())
    args = ["preprocess", "--out", str(tmp_path / "out" / "s"), "--t1w", str(good)]
    if case == "unreadable":
        bad = tmp_path / "bad.nii.gz"
        bad.write_bytes(b"not a nifti at all")
        args[-1] = str(bad)
    elif case == "4d":
        bad = _write(tmp_path / "bad.nii.gz", np.ones((5, 5, 5, 3), np.float32))
        args[-1] = str(bad)
    elif case == "nan":
        data = _brain_like()
        data[3, 3, 3] = np.nan
        bad = _write(tmp_path / "bad.nii.gz", data)
        args[-1] = str(bad)
    elif case == "zeros":
        bad = _write(tmp_path / "bad.nii.gz", np.zeros((10, 10, 10), np.float32))
        args[-1] = str(bad)
    else:
        bad = _write(tmp_path / "bad.nii.gz", np.ones((5, 6, 7), np.int16))
        args += ["--labels", str(bad)]
    assert main(args) == 2
    assert str(bad) in capsys.readouterr().err
    out_dir = tmp_path / "out"
    assert not out_dir.exists() or not any(out_dir.iterdir())


HEAD_SHAPE, HEAD_SPACING = (24, 28, 24), 4.0


def _grid(shape: tuple[int, int, int], spacing: float, flip_i: bool = False) -> np.ndarray:
    """A grid centred on the world origin; ``flip_i`` makes its first axis point left (LAS)."""
    affine = np.diag([-spacing if flip_i else spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -(affine[:3, :3] @ (np.asarray(shape) - 1)) / 2
    return affine


def _ellipsoid(shape: tuple[int, int, int], affine: np.ndarray, scale: float = 1.0,
               centre_mm: tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
    """Voxels of a 68 x 84 x 68 mm (times ``scale``) ellipsoid around ``centre_mm``."""
    world = nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T).T
    world -= np.asarray(centre_mm, dtype=float)[:, None]
    radius = np.sqrt((world[0] / 34) ** 2 + (world[1] / 42) ** 2 + (world[2] / 34) ** 2)
    return (radius < scale).reshape(shape)


def _head(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 4 mm 'head': a 200 ml brain (with texture) inside a 400 ml scalp; (path, brain)."""
    affine = _grid(HEAD_SHAPE, HEAD_SPACING)
    brain = _ellipsoid(HEAD_SHAPE, affine)
    x = nib.affines.apply_affine(affine, np.indices(HEAD_SHAPE).reshape(3, -1).T)[:, 0]
    texture = 100 + 20 * np.sin(x / 6).reshape(HEAD_SHAPE)
    image = np.where(brain, texture, np.where(_ellipsoid(HEAD_SHAPE, affine, 1.25), 60, 0))
    return _write(tmp_path / "head.nii.gz", image.astype(np.float32), affine), brain


def _cheap_affine(monkeypatch) -> None:
    """One 8 mm level of 5 steps instead of the default 4 and 2 mm levels: the affine is not
    what these tests check, and the default costs seconds."""
    from nir.preprocess import pipeline

    real = pipeline.register_affine
    monkeypatch.setattr(pipeline, "register_affine",
                        lambda *args: real(*args[:5], (8.0,), (5,), *args[7:]))


def test_given_brainmask_replaces_brain_extraction(tmp_path, monkeypatch):
    _cheap_affine(monkeypatch)
    t1w, brain = _head(tmp_path)
    # the mask on another grid of the same space (2 mm, first axis flipped): resampled
    fine_shape = (48, 56, 48)
    fine = _grid(fine_shape, 2.0, flip_i=True)
    mask = _write(tmp_path / "mask.nii.gz", _ellipsoid(fine_shape, fine).astype(np.uint8), fine)
    prefix = tmp_path / "out" / "s"
    assert main(["preprocess", "--t1w", str(t1w), "--brainmask", str(mask), "--out",
                 str(prefix), "--skull-strip", "none", "--no-bias-correct", "--grid-shape",
                 "16", "16", "16", "--grid-spacing", "8", "--device", "cpu"]) == 0
    written = nib.load(f"{prefix}_brainmask.nii.gz")
    assert written.shape == HEAD_SHAPE and np.allclose(written.affine, _grid(HEAD_SHAPE, 4.0))
    got = np.asarray(written.dataobj) > 0
    dice = 2 * (got & brain).sum() / (got.sum() + brain.sum())
    assert dice > 0.97, f"given mask vs brain Dice {dice:.3f}"
    summary = json.loads(Path(f"{prefix}_summary.json").read_text())
    assert summary["parameters"]["skull_strip_used"] == "given"
    assert summary["brainmask"] == str(mask)
    # the brain (about 200 ml), not the whole head that '--skull-strip none' would keep (400 ml)
    assert 180 < summary["mask_volume_ml"] < 225, summary["mask_volume_ml"]


@pytest.mark.parametrize("case, problem", [
    ("empty", "all zero"),
    ("4d", "expected a 3D volume"),
    ("other_space", "lies within the field of view"),
    ("background", "darker inside the brain mask"),
    ("tiny", "brain mask is only"),
])
def test_bad_brainmask_gives_status_2_naming_it(tmp_path, capsys, case, problem):
    t1w, brain = _head(tmp_path)
    affine = _grid(HEAD_SHAPE, HEAD_SPACING)
    if case == "empty":
        data = np.zeros(HEAD_SHAPE, np.uint8)
    elif case == "4d":
        data = np.stack([brain, brain], axis=-1).astype(np.uint8)
    elif case == "other_space":  # the same brain, but 150 mm away: outside the T1w
        affine = affine.copy()
        affine[:3, 3] += 150.0
        data = brain.astype(np.uint8)
    elif case == "background":  # inside the field of view, but where the T1w is empty
        data = _ellipsoid(HEAD_SHAPE, affine, 0.3, centre_mm=(-36, -46, -36)).astype(np.uint8)
    else:
        data = _ellipsoid(HEAD_SHAPE, affine, 0.4).astype(np.uint8)
    mask = _write(tmp_path / "bad mask.nii.gz", data, affine)
    args = ["preprocess", "--t1w", str(t1w), "--brainmask", str(mask),
            "--out", str(tmp_path / "out" / "s"), "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{mask}: " in err and problem in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
