"""The synthetic demo cohort: deterministic, labels follow the deformation, pose applied."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nir.cli import main
from nir.study.cohort import check_files, read_sheet
from nir.study.demo import (
    DemoSettings,
    demo_template,
    integrate_velocity,
    make_subject,
    random_velocity,
)

SPACING = 4.0
CLEAN = DemoSettings(spacing_mm=SPACING, bias=0.0, noise=0.0)


@pytest.fixture(scope="module")
def template():
    return demo_template(SPACING)


def _centroid_world(labels: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return nib.affines.apply_affine(affine, np.argwhere(labels > 0).mean(0))


def test_template_has_lateralised_freesurfer_labels(template) -> None:
    present = set(np.unique(template.labels).tolist())
    assert {0, 2, 3, 4, 41, 42, 43}.issubset(present)
    x = nib.affines.apply_affine(template.affine, np.argwhere(template.labels == 2))[:, 0]
    assert (x < 0).all()  # left white matter lies at RAS x < 0


def test_same_seed_same_subject_other_seed_differs(template) -> None:
    a = make_subject(template, 1, seed=3, settings=DemoSettings(spacing_mm=SPACING))
    b = make_subject(template, 1, seed=3, settings=DemoSettings(spacing_mm=SPACING))
    c = make_subject(template, 1, seed=4, settings=DemoSettings(spacing_mm=SPACING))
    assert np.array_equal(a.t1, b.t1) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)
    assert not np.allclose(a.pose, c.pose)


def test_deformation_is_diffeomorphic(template) -> None:
    rng = np.random.default_rng(0)
    v = random_velocity(rng, template.t1.shape, SPACING, DemoSettings(deformation_mm=6.0))
    disp = integrate_velocity(v)
    grads = np.stack([np.stack(np.gradient(disp[c]), 0) for c in range(3)])  # (3, 3, ...)
    jac = np.linalg.det(np.moveaxis(grads + np.eye(3)[:, :, None, None, None], (0, 1), (-2, -1)))
    assert jac.min() > 0
    assert np.abs(disp).max() > 0.5  # it does move voxels (in voxel units at 4 mm)


def test_labels_follow_the_image(template) -> None:
    subject = make_subject(template, 2, seed=0, settings=CLEAN)
    mean_of = np.zeros(int(template.labels.max()) + 1)
    for label in np.unique(template.labels):
        mean_of[label] = template.t1[template.labels == label].mean()

    def mismatch(labels: np.ndarray) -> float:
        """Mean |image - per-label template mean| when ``labels`` describe the subject image."""
        return float(np.abs(subject.t1 - mean_of[labels]).mean())

    assert np.mean(subject.labels != template.labels) > 0.05  # the labels did move
    # the subject's own labels explain its image far better than the undeformed template labels
    assert mismatch(subject.labels) < 0.7 * mismatch(template.labels)


def test_pose_is_applied_to_image_and_labels(template) -> None:
    settings = DemoSettings(spacing_mm=SPACING, deformation_mm=0.0, bias=0.0, noise=0.0,
                            rotation_deg=8.0, translation_mm=8.0, scale=0.08)
    subject = make_subject(template, 5, seed=2, settings=settings)
    expected = nib.affines.apply_affine(np.linalg.inv(subject.pose),
                                        _centroid_world(template.labels, template.affine))
    assert np.linalg.norm(_centroid_world(subject.labels, template.affine) - expected) < SPACING
    volume_ratio = (subject.labels > 0).sum() / (template.labels > 0).sum()
    assert volume_ratio == pytest.approx(1 / np.linalg.det(subject.pose[:3, :3]), rel=0.03)
    assert not np.allclose(subject.pose, np.eye(4), atol=1e-3)


def test_cli_writes_cohort_sheet_and_images(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-subjects", "2", "--seed", "5",
                 "--spacing-mm", str(SPACING)]) == 0
    subjects = read_sheet(out / "cohort.tsv")
    check_files(subjects, out / "cohort.tsv", require_labels=True)
    assert [s.id for s in subjects] == ["sub-01", "sub-02"]
    t1 = nib.load(str(subjects[1].t1w))
    labels = nib.load(str(subjects[1].labels))
    assert np.allclose(t1.affine, labels.affine) and t1.shape == labels.shape
    assert np.allclose(np.abs(np.diag(t1.affine)[:3]), SPACING)
    assert np.issubdtype(labels.get_data_dtype(), np.integer)
    assert main(["demo", "--out", str(out), "--spacing-mm", "0"]) == 2
