"""Template construction steps: inverse of a displacement, the shape update's centring, the
sharpness measure, majority labels and group-wise Dice, and the ``nir template`` input checks."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from nir.cli import main
from nir.spatial.displacement import save_warp
from nir.spatial.io import load_volume, save_volume
from nir.study.template import (
    Grid,
    displaced,
    groupwise_dice,
    invert_displacement,
    majority_labels,
    shape_update,
    sharpness,
)
from nir.study.template_steps import round_measures, write_initial

SHAPE = (32, 36, 30)
AFFINE = np.array([[2.0, 0, 0, -30], [0, 2.0, 0, -34], [0, 0, 2.0, -28], [0, 0, 0, 1]])


def _grid() -> Grid:
    return Grid(SHAPE, AFFINE, nib.Nifti1Header())


def _world() -> np.ndarray:
    ijk = np.indices(SHAPE, dtype=float).reshape(3, -1)
    return (AFFINE[:3, :3] @ ijk + AFFINE[:3, 3:4]).T.reshape(*SHAPE, 3)


def _blob(centre_mm: np.ndarray, sigma_mm: float = 8.0) -> np.ndarray:
    d2 = ((_world() - centre_mm) ** 2).sum(-1)
    return np.exp(-d2 / (2 * sigma_mm**2)).astype(np.float32)


def _centroid(image: np.ndarray) -> np.ndarray:
    weights = image / image.sum()
    return (_world() * weights[..., None]).reshape(-1, 3).sum(0)


def test_inverse_of_a_smooth_displacement_composes_to_identity() -> None:
    x = torch.from_numpy(_world()).float()
    disp = torch.stack([3.0 * torch.sin(x[..., 1] / 15), 2.0 * torch.cos(x[..., 2] / 12),
                        2.5 * torch.sin(x[..., 0] / 18)], dim=-1)
    grid = _grid()
    inverse, residual = invert_displacement(disp, grid)
    # (id + disp) o (id + inverse) = id: inverse(y) + disp(y + inverse(y)) = 0
    composed = inverse + displaced(disp, inverse, grid)
    inner = (slice(4, -4),) * 3
    assert residual < 0.01
    assert float(composed[inner].norm(dim=-1).max()) < 0.05
    assert float((inverse + disp)[inner].norm(dim=-1).max()) > 0.3  # not just -disp


def test_shape_update_moves_the_template_to_the_cohort_centre(tmp_path: Path) -> None:
    """Subjects are the template's blob shifted by a_s; their warps to it are the constant
    fields a_s; the update must put the blob at the mean shift and measure |mean a_s|."""
    centre = np.array([1.0, -2.0, 3.0])
    shifts = [np.array(a) for a in ([4.0, 0.0, -2.0], [2.0, 3.0, 0.0], [0.0, 3.0, 4.0])]
    template = tmp_path / "template.nii.gz"
    save_volume(_blob(centre), AFFINE, template)
    images, warps = [], []
    for i, a in enumerate(shifts):
        images.append(save_volume(_blob(centre + a), AFFINE, tmp_path / f"s{i}.nii.gz"))
        disp = torch.from_numpy(np.broadcast_to(a, (*SHAPE, 3)).copy()).float()
        warps.append(save_warp(disp, AFFINE, tmp_path / f"s{i}_warp.nii.gz"))
    update = shape_update([load_volume(p) for p in images], warps, load_volume(template))
    mean_shift = np.mean(shifts, axis=0)
    assert np.allclose(_centroid(update.template.numpy()), centre + mean_shift, atol=0.15)
    assert update.mean_norm_mm == pytest.approx(np.linalg.norm(mean_shift), abs=1e-3)
    # a round's measures report the same bias of the template the warps point from
    measures = round_measures(template, warps)
    assert measures["mean_displacement_mm"] == pytest.approx(np.linalg.norm(mean_shift), 1e-3)


def test_sharpness_drops_when_the_template_is_blurred() -> None:
    rng = np.random.default_rng(0)
    image = (_blob(np.zeros(3), 20.0) > 0.2).astype(np.float32)
    image *= 1 + 0.5 * (rng.random(SHAPE) > 0.5)  # internal edges
    from scipy import ndimage

    blurred = ndimage.gaussian_filter(image, 1.5)
    grid = _grid()
    assert sharpness(torch.from_numpy(blurred), grid) < 0.7 * sharpness(torch.from_numpy(image),
                                                                       grid)


def test_majority_labels_and_groupwise_dice() -> None:
    a = np.zeros((6, 6, 6), np.int32)
    a[:3] = 2
    b, c = a.copy(), a.copy()
    b[3] = 2  # one extra slab
    c[:, :1] = 0
    vote = majority_labels([a, b, c])
    assert np.array_equal(vote, a)
    assert groupwise_dice([a, a, a]) == pytest.approx(1.0)
    assert groupwise_dice([a, b, c]) < 1.0


def test_initial_template_choices(tmp_path: Path) -> None:
    images = [save_volume(_blob(np.array([d, 0.0, 0.0])) * 100, AFFINE,
                          tmp_path / f"s{d}.nii.gz") for d in (0, 4)]
    mean = write_initial(images, tmp_path / "mean.nii.gz")
    one = write_initial(images, tmp_path / "one.nii.gz", "b", ["a", "b"])
    mni = write_initial(images, tmp_path / "mni.nii.gz", "mni152")
    assert _centroid(nib.load(mean).get_fdata())[0] == pytest.approx(2.0, abs=0.1)
    assert _centroid(nib.load(one).get_fdata())[0] == pytest.approx(4.0, abs=0.1)
    assert nib.load(mni).get_fdata().max() > 0.5
    for path in (mean, one, mni):
        assert np.allclose(nib.load(path).affine, AFFINE)


def test_template_cli_refuses_bad_input(tmp_path: Path, capsys) -> None:
    one = save_volume(_blob(np.zeros(3)), AFFINE, tmp_path / "a.nii.gz")
    two = save_volume(_blob(np.ones(3)), AFFINE, tmp_path / "b.nii.gz")
    assert main(["template", "--images", str(one), "--out", str(tmp_path / "t")]) == 2
    assert "at least 2 images" in capsys.readouterr().err
    shifted = AFFINE.copy()
    shifted[0, 3] += 5
    moved = save_volume(_blob(np.zeros(3)), shifted, tmp_path / "c.nii.gz")
    assert main(["template", "--images", str(one), str(moved), "--out",
                 str(tmp_path / "t")]) == 2
    assert "c.nii.gz" in capsys.readouterr().err
    assert main(["template", "--images", str(one), str(two), "--out", str(tmp_path / "t"),
                 "--initial", "nobody"]) == 2
    assert "nobody" in capsys.readouterr().err
    assert not (tmp_path / "t" / "iter-01").exists()


def test_template_plan_checks_method_and_initial() -> None:
    from nir.errors import NirInputError
    from nir.study.methods import parse_methods
    from nir.study.template_plan import TemplatePlan

    methods = parse_methods({"vel": {"preset": "fast"}, "disp": {"mode": "displacement"},
                             "syn": {"engine": "ants"}})
    config = {"template": {"initial": "sub-02", "iterations": 2, "method": None,
                           "keep_rounds": False},
              "outputs": {"warp": False, "jacobian": True, "warped": True,
                          "warped_labels": False, "warp_dtype": "int16"}}
    plan = TemplatePlan.from_config(config, methods, ["sub-01", "sub-02"], "res")
    assert plan.method == "vel" and plan.velocity
    # inverse warps in the last round only, and with them the warp's storage
    assert plan.kinds(final=True)[-1] == "inverse_warp"
    assert "inverse_warp" not in plan.kinds(final=False)
    assert plan.register_flags(final=True) == "--warp-dtype int16 --inverse"
    assert plan.register_flags(final=False) == "--warp-dtype int16"
    assert (plan.rounds(final=False), plan.rounds(final=True)) == ("00|01", "02")
    assert plan.image(2) == "res/template/iter-02/template.nii.gz"
    assert plan.registered("warp", 1, "sub-01") == \
        "res/template/iter-01/register/sub-01/sub-01_warp.nii.gz"
    # the last round keeps what `outputs` says (the inverse goes with the warp); the earlier
    # rounds drop their warps and det J maps too, unless keep_rounds
    prefix = "res/template/iter-0{}/register/sub-01/sub-01_"
    assert plan.dropped(2, "sub-01") == [prefix.format(2) + kind + ".nii.gz" for kind in
                                         ("warped_labels", "warp", "inverse_warp")]
    assert plan.dropped(0, "sub-01") == [prefix.format(0) + kind + ".nii.gz" for kind in
                                         ("warped_labels", "warp", "jacobian")]
    config["template"]["keep_rounds"] = True
    kept = TemplatePlan.from_config(config, methods, ["sub-01", "sub-02"], "res")
    assert kept.dropped(0, "sub-01") == [prefix.format(0) + "warped_labels.nii.gz"]
    config["template"]["method"] = "disp"
    displacement = TemplatePlan.from_config(config, methods, ["sub-01", "sub-02"], "r")
    assert "inverse_warp" not in displacement.kinds(final=True)
    config["template"]["method"] = "syn"
    with pytest.raises(NirInputError, match=r"template\.method"):
        TemplatePlan.from_config(config, methods, ["sub-01", "sub-02"], "r")
    config["template"].update(method=None, initial="sub-09")
    with pytest.raises(NirInputError, match=r"'sub-09' is neither"):
        TemplatePlan.from_config(config, methods, ["sub-01", "sub-02"], "r")
