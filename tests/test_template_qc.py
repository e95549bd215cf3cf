"""Template QC (nir.study.template_qc): the Dice and NCC of each subject's registration onto the
final template, and the outlier rule, on synthetic registrations where one subject was left
10 mm off; the panels and the Markdown table."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from nir.errors import NirInputError
from nir.evaluation.outline_panel import label_outline
from nir.spatial.io import save_volume
from nir.study.template_qc import (
    MIN_SPREAD,
    OUTLIER_Z,
    Reference,
    flag_outliers,
    ncc,
    robust_z,
    write_template_qc,
)

SHAPE = (40, 44, 36)
SPACING = 2.0
AFFINE = np.diag([SPACING, SPACING, SPACING, 1.0])
AFFINE[:3, 3] = -40.0
SHIFT_MM = 10.0
IDS = [f"sub-{i:02d}" for i in range(1, 9)]
OFF = "sub-05"  # the subject left 10 mm off the template


def _brain(offset_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A textured ellipsoid 'brain' with aseg-numbered labels (white matter 2/41, cortex 3/42 as
    a shell, hippocampi 17/53), its centre at ``offset_mm``."""
    world = np.indices(SHAPE).transpose(1, 2, 3, 0) * SPACING - 40.0 - offset_mm
    r = np.sqrt(((world / [30.0, 34.0, 26.0]) ** 2).sum(-1))
    inside = r < 1
    image = np.where(inside, 0.5 + 0.25 * np.sin(world[..., 0] / 4) * np.cos(world[..., 1] / 6)
                     + 0.2 * (r < 0.8), 0.0)
    left = world[..., 0] < 0
    labels = np.where(inside, np.where(left, 3, 42), 0)
    labels[(r < 0.8) & left] = 2
    labels[(r < 0.8) & ~left] = 41
    for label, x in ((17, -12.0), (53, 12.0)):
        labels[np.linalg.norm(world - [x, -4.0, -6.0], axis=-1) < 6] = label
    return image.astype(np.float32), labels.astype(np.int32)


@pytest.fixture
def registrations(tmp_path: Path) -> dict:
    """A template and eight subjects 'registered' onto it: each the template's brain off by up
    to 1 mm along each axis with its own noise, ``OFF`` off by 10 mm along x."""
    rng = np.random.default_rng(0)
    image, labels = _brain(np.zeros(3))
    template = save_volume(image, AFFINE, tmp_path / "template.nii.gz")
    template_labels = save_volume(labels, AFFINE, tmp_path / "template_labels.nii.gz")
    warped, warped_labels = [], []
    for sid in IDS:
        offset = np.array([SHIFT_MM, 0, 0]) if sid == OFF else rng.uniform(-1.0, 1.0, 3)
        image, labels = _brain(offset)
        image += rng.normal(0, 0.03, SHAPE).astype(np.float32) * (image > 0)
        warped.append(save_volume(image, AFFINE, tmp_path / f"{sid}_warped.nii.gz"))
        warped_labels.append(save_volume(labels, AFFINE, tmp_path / f"{sid}_labels.nii.gz"))
    return {"template": template, "labels": template_labels, "warped": warped,
            "warped_labels": warped_labels, "dir": tmp_path}


def test_a_subject_left_10_mm_off_is_the_one_outlier(registrations: dict) -> None:
    out = registrations["dir"] / "qc"
    panels = [out / f"{sid}.png" for sid in IDS]
    excluded = {"sub-09": "motion artefacts in the T1w"}
    table = write_template_qc(registrations["template"], registrations["labels"], IDS,
                              registrations["warped"], registrations["warped_labels"],
                              out / "template_qc.csv", out / "template_qc.md", panels, excluded)
    print(table.to_string())
    flagged = table.set_index("subject")
    assert flagged.index.tolist() == IDS
    assert flagged["outlier"].tolist() == [sid == OFF for sid in IDS]
    # both numbers see it: the labels and the image are both 10 mm off
    assert flagged.loc[OFF, "flagged_by"] == "dice, ncc"
    assert flagged.loc[OFF, "dice_z"] < -OUTLIER_Z and flagged.loc[OFF, "ncc_z"] < -OUTLIER_Z
    good = flagged.drop(OFF)
    assert good["dice"].min() > 0.8 and good["ncc"].min() > 0.8
    assert flagged.loc[OFF, "dice"] < good["dice"].min() - 0.1
    written = pd.read_csv(out / "template_qc.csv").set_index("subject")
    assert written.loc[OFF, "outlier"] and written.loc[OFF, "dice"] == pytest.approx(
        flagged.loc[OFF, "dice"], abs=1e-6)
    markdown = (out / "template_qc.md").read_text()
    assert f"| {OFF} |" in markdown and "**yes** (dice, ncc)" in markdown
    assert markdown.count("**yes**") == 1
    assert "- sub-09: motion artefacts in the T1w" in markdown
    for panel in panels:  # a 2 x 3 panel at 80 dpi: about 960 x 640 pixels
        pixels = matplotlib.image.imread(panel)
        assert pixels.shape[0] > 500 and pixels.shape[1] > 800, panel
    # the flagged subject's title is drawn in red, the others' in white
    title_rows = {sid: matplotlib.image.imread(panel)[:40, :, :3]
                  for sid, panel in zip(IDS, panels, strict=True)}
    reds = {sid: int(((rows[..., 0] > 0.9) & (rows[..., 1] < 0.45)).sum())
            for sid, rows in title_rows.items()}
    assert reds[OFF] > 50 and max(v for s, v in reds.items() if s != OFF) == 0, reds


def test_ncc_and_dice_of_the_template_itself_are_one(registrations: dict) -> None:
    reference = Reference.read(registrations["template"], registrations["labels"])
    assert reference.scored == [2, 3, 17, 41, 42, 53]
    image = reference.volume.data.numpy()
    assert ncc(image, image, reference.region) == pytest.approx(1.0)
    assert ncc(image, 2 * image + 1, reference.region) == pytest.approx(1.0)
    assert ncc(image, -image, reference.region) == pytest.approx(-1.0)


def test_robust_z_has_a_floor_and_flags_only_low_values() -> None:
    # five near-identical registrations: 0.890 is 0.01 below the median, one floored SD, so it
    # is not flagged (without the floor its z would be -10 / 1.4826 / 0.0005 ...)
    z = robust_z([0.900, 0.901, 0.899, 0.900, 0.890])
    assert z[-1] == pytest.approx(-0.010 / MIN_SPREAD)
    spread = 1.4826 * 0.04  # the median absolute deviation of the values below is 0.04
    z = robust_z([0.80, 0.82, 0.84, 0.86, 0.88, 0.60, 0.99, np.nan])
    assert z[5] == pytest.approx((0.60 - 0.84) / spread)
    assert np.isnan(z[-1])
    table = flag_outliers(pd.DataFrame({"subject": list("abcdefgh"),
                                        "dice": [0.80, 0.82, 0.84, 0.86, 0.88, 0.60, 0.99, 0.83],
                                        "ncc": [0.9] * 8}))
    # 0.60 is 4.0 robust SD below: flagged; 0.99 is 2.6 above, and a good registration
    assert table["outlier"].tolist() == [False] * 5 + [True, False, False]
    assert table.loc[5, "flagged_by"] == "dice"


def test_a_warped_image_off_the_template_grid_is_refused(registrations: dict,
                                                         tmp_path: Path) -> None:
    image, _ = _brain(np.zeros(3))
    shifted = AFFINE.copy()
    shifted[0, 3] += 3.0
    other = save_volume(image, shifted, tmp_path / "other_grid.nii.gz")
    reference = Reference.read(registrations["template"], registrations["labels"])
    with pytest.raises(NirInputError,
                       match=r"other_grid\.nii\.gz: affine differs from the template"):
        reference.on_grid(other)


def test_label_outline_is_one_pixel_along_each_border() -> None:
    labels = np.zeros((6, 6), int)
    labels[2:4, 2:4] = 5
    edge = label_outline(labels)
    # the square's first row and column, and the pixels just past its last row and column
    assert sorted(map(tuple, np.argwhere(edge))) == [(2, 2), (2, 3), (2, 4), (3, 2), (3, 4),
                                                     (4, 2), (4, 3)]
