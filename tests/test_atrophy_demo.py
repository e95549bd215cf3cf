"""The two-group demo: hippocampus labels, a known local atrophy of the requested size with no
volume gained elsewhere, participants.tsv, and the one-group demo unchanged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nir.errors import NirInputError
from nir.study.atrophy import (
    ATROPHIED_LABEL,
    HIPPOCAMPUS_CENTRES_MM,
    label_volume_ratio,
    log_jacobian,
    paint_hippocampi,
    region_in_world,
    sink_rate,
    sink_velocity,
)
from nir.study.demo import DemoSettings, demo_template, integrate_velocity, write_demo

SPACING = 3.0


@pytest.fixture(scope="module")
def template():
    t = demo_template(SPACING)
    t.labels = paint_hippocampi(t.labels, t.affine)
    return t


def test_sink_removes_the_requested_volume_and_adds_none(template) -> None:
    shrink = integrate_velocity(sink_velocity(template.t1.shape, template.affine, 0.12))
    ratio = label_volume_ratio(template.labels, ATROPHIED_LABEL, shrink)
    assert ratio == pytest.approx(0.88, abs=0.015)
    assert label_volume_ratio(template.labels, 53, shrink) == pytest.approx(1.0, abs=0.005)
    logj = log_jacobian(shrink)
    assert logj.max() < 0.01  # no compensating expansion
    assert logj.min() == pytest.approx(-sink_rate(0.12), rel=0.1)
    centre = np.argwhere(template.labels == ATROPHIED_LABEL).mean(0).round().astype(int)
    assert logj[tuple(centre)] < 0.9 * logj.min()


def test_two_group_demo_files_and_truth(tmp_path: Path) -> None:
    settings = DemoSettings(spacing_mm=SPACING, groups=2, atrophy=0.15, deformation_mm=0.0,
                            rotation_deg=0.0, translation_mm=0.0, scale=0.0, bias=0.0,
                            noise=0.0)
    subjects = write_demo(tmp_path, 4, seed=0, settings=settings)
    with (tmp_path / "participants.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["group"] for r in rows] == ["control", "patient", "control", "patient"]
    assert all(60 <= float(r["age"]) <= 80 for r in rows)
    truth = json.loads((tmp_path / "atrophy.json").read_text())
    assert truth["volume_loss"] == pytest.approx(0.15, abs=0.015)
    images = [nib.load(s.t1w) for s in subjects]
    diff = np.abs(images[1].get_fdata() - images[0].get_fdata())  # patient - control
    assert np.array_equal(images[0].get_fdata(), images[2].get_fdata())  # controls identical
    moved = np.argwhere(diff > 0.01 * images[0].get_fdata().max())
    centre = nib.affines.apply_affine(images[0].affine, moved).mean(0)
    assert np.linalg.norm(centre - HIPPOCAMPUS_CENTRES_MM[17]) < 6.0  # only around it
    truth_img = nib.load(tmp_path / "atrophy_logjac.nii.gz")
    region = region_in_world(truth_img, truth_img.shape, truth_img.affine)
    labels = np.asarray(nib.load(subjects[0].labels).dataobj)
    assert (labels[region] == 17).mean() > 0.5  # the half-maximum region is the hippocampus


def test_one_group_demo_is_unchanged_and_settings_are_checked(tmp_path: Path) -> None:
    plain = DemoSettings(spacing_mm=4.0)
    write_demo(tmp_path / "a", 2, seed=5, settings=plain)
    write_demo(tmp_path / "b", 2, seed=5, settings=DemoSettings(spacing_mm=4.0, groups=2))
    image = "sub-01/anat/sub-01_T1w.nii.gz"
    assert np.array_equal(nib.load(tmp_path / "a" / image).get_fdata(),
                          nib.load(tmp_path / "b" / image).get_fdata())  # a control
    assert not (tmp_path / "a" / "participants.tsv").exists()
    assert not (tmp_path / "b" / "atrophy_logjac.nii.gz").exists()  # null cohort: no atrophy
    with pytest.raises(NirInputError, match="needs groups 2"):
        DemoSettings(atrophy=0.1).check()
