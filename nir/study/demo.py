"""A synthetic cohort made offline from nilearn's bundled MNI152 2009 template.

Each subject is the template seen through a random pose (rotation, translation, scale about the
brain centre) followed by a smooth diffeomorphic deformation (a Gaussian-smoothed random velocity
field integrated by scaling and squaring), then a smooth multiplicative bias field and Rician
noise inside the brain (the template is skull-stripped, and so are the subjects).  The label map
(FreeSurfer-like IDs derived from the tissue probability maps) follows the same mapping with
nearest-neighbour sampling, so it stays a valid label map.  Everything is deterministic given
the seed; subject ``i`` does not depend on how many subjects are made.

With ``groups=2`` the labels gain both hippocampi, subjects alternate between the groups
``control`` (odd) and ``patient`` (even), and patients see the template through a known left
hippocampal atrophy (:mod:`nir.study.atrophy`) of ``atrophy`` (a volume fraction; 0 gives a null
cohort).  ``participants.tsv`` (subject, group, age) and, with atrophy, its true log det J map
``atrophy_logjac.nii.gz`` and ``atrophy.json`` (the measured volume loss of the label) are
written beside the sample sheet.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from nir.errors import NirInputError
from nir.preprocess.template import MNI152_KINDS, mni152_file
from nir.spatial.geometry import nodes_spanning, voxel_sizes
from nir.spatial.io import atomic_write, save_volume, write_text
from nir.study.atrophy import (
    ATROPHIED_LABEL,
    label_volume_ratio,
    log_jacobian,
    paint_hippocampi,
    sink_velocity,
)
from nir.study.cohort import Subject, demo_ids, demo_subject

MARGIN_MM = 12.0
SQUARING_STEPS = 7

# FreeSurfer aseg IDs (left, right) for the synthetic structures.
LABELS = {
    "cerebral_white_matter": (2, 41),
    "cerebral_cortex": (3, 42),
    "lateral_ventricle": (4, 43),
    "cerebellum_white_matter": (7, 46),
    "cerebellum_cortex": (8, 47),
    "thalamus": (10, 49),
}
CSF_LABEL = 24
VENTRICLE_DEPTH_MM = 14.0
DEEP_GREY_DEPTH_MM = 22.0
GROUPS = ("control", "patient")
AGE_RANGE = (60.0, 80.0)
PARTICIPANTS = "participants.tsv"
ATROPHY_TRUTH = "atrophy_logjac.nii.gz"


@dataclass(frozen=True)
class DemoSettings:
    """How different the synthetic subjects are from the template (and from each other)."""

    spacing_mm: float = 2.0
    deformation_mm: float = 4.0
    smoothness_mm: float = 12.0
    rotation_deg: float = 5.0
    translation_mm: float = 5.0
    scale: float = 0.05
    bias: float = 0.15
    noise: float = 0.02
    groups: int = 1
    atrophy: float = 0.0

    def check(self) -> DemoSettings:
        """Raise NirInputError for a setting out of range."""
        if self.spacing_mm <= 0:
            raise NirInputError(None, f"spacing_mm must be positive, got {self.spacing_mm}")
        for name in ("deformation_mm", "smoothness_mm", "rotation_deg", "translation_mm",
                     "scale", "bias", "noise"):
            if getattr(self, name) < 0:
                raise NirInputError(None, f"{name} must not be negative")
        if self.groups not in (1, 2):
            raise NirInputError(None, f"groups must be 1 or 2, got {self.groups}")
        if not 0 <= self.atrophy < 0.5 or (self.atrophy and self.groups != 2):
            raise NirInputError(None, "atrophy must be in [0, 0.5) and needs groups 2, got "
                                      f"{self.atrophy} with groups {self.groups}")
        return self


@dataclass
class Template:
    """The template T1 and its label map on the demo grid (voxel-to-RAS ``affine``)."""

    t1: np.ndarray
    labels: np.ndarray
    affine: np.ndarray


@dataclass
class SyntheticSubject:
    """One generated subject; ``coords`` are the template voxel coordinates each voxel shows."""

    t1: np.ndarray
    labels: np.ndarray
    pose: np.ndarray
    coords: np.ndarray


def _resample(img: nib.Nifti1Image, affine: np.ndarray, shape: tuple[int, ...],
              spacing: float) -> np.ndarray:
    data = np.asarray(img.dataobj, dtype=np.float32)
    src_spacing = float(voxel_sizes(img.affine).mean())
    if spacing > src_spacing:
        data = ndimage.gaussian_filter(data, 0.4 * spacing / src_spacing)
    vox = np.linalg.inv(img.affine) @ affine
    return ndimage.affine_transform(data, vox[:3, :3], vox[:3, 3], output_shape=shape,
                                    order=1, cval=0.0).astype(np.float32)


def demo_grid(t1: nib.Nifti1Image, spacing: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A grid of ``spacing`` mm covering the template brain plus a margin: (affine, shape)."""
    ijk = np.argwhere(np.asarray(t1.dataobj) > 0)
    corners = nib.affines.apply_affine(t1.affine, np.stack([ijk.min(0), ijk.max(0)]))
    low, high = corners.min(0) - MARGIN_MM, corners.max(0) + MARGIN_MM
    shape = nodes_spanning(low, high, spacing)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = low
    return affine, shape


def tissue_labels(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray, affine: np.ndarray
                  ) -> np.ndarray:
    """FreeSurfer-like labels from tissue probabilities: left/right cerebral WM and cortex, deep
    grey (thalamus IDs), deep CSF (lateral ventricles), cerebellum, and other CSF (24)."""
    spacing = float(voxel_sizes(affine).mean())
    brain = ndimage.binary_fill_holes(t1 > 0.05 * t1.max())
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    tissue = np.argmax(np.stack([wm, gm, csf]), axis=0)  # 0 WM, 1 GM, 2 CSF
    depth = ndimage.distance_transform_edt(brain) * spacing
    ijk = np.indices(t1.shape).reshape(3, -1)
    x, y, z = nib.affines.apply_affine(affine, ijk.T).T.reshape(3, *t1.shape)
    right = (x >= 0).astype(int)
    cerebellum = (y < -38) & (z < -22)
    names = np.full(t1.shape, "", dtype=object)
    names[tissue == 0] = "cerebral_white_matter"
    names[tissue == 1] = "cerebral_cortex"
    names[(tissue == 1) & (depth > DEEP_GREY_DEPTH_MM) & ~cerebellum] = "thalamus"
    names[(tissue == 2) & (depth > VENTRICLE_DEPTH_MM)] = "lateral_ventricle"
    names[cerebellum & (tissue == 0)] = "cerebellum_white_matter"
    names[cerebellum & (tissue == 1)] = "cerebellum_cortex"
    labels = np.zeros(t1.shape, dtype=np.int16)
    for name, ids in LABELS.items():
        sel = names == name
        labels[sel] = np.asarray(ids, dtype=np.int16)[right[sel]]
    labels[(tissue == 2) & (names == "")] = CSF_LABEL
    labels[~brain] = 0
    return labels


def demo_template(spacing_mm: float = 2.0) -> Template:
    """The demo's template: the MNI152 2009 T1 and labels derived from its tissue maps, resampled
    to ``spacing_mm`` around the brain (the registration template is
    :func:`nir.preprocess.template.load_template`)."""
    images = {k: nib.load(str(mni152_file(k))) for k in MNI152_KINDS}
    affine, shape = demo_grid(images["t1"], spacing_mm)
    t1, gm, wm = (_resample(images[k], affine, shape, spacing_mm) for k in ("t1", "gm", "wm"))
    t1 = np.clip(t1, 0.0, None)
    return Template(t1, tissue_labels(t1, gm / 255.0, wm / 255.0, affine), affine)


def _rotation(angles: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_pose(rng: np.random.Generator, settings: DemoSettings, centre: np.ndarray
                ) -> np.ndarray:
    """A 4x4 world (RAS mm) affine: rotation, scale about ``centre``, then a translation."""
    angles = np.deg2rad(rng.uniform(-settings.rotation_deg, settings.rotation_deg, 3))
    scales = 1.0 + rng.uniform(-settings.scale, settings.scale, 3)
    shift = rng.uniform(-settings.translation_mm, settings.translation_mm, 3)
    linear = _rotation(angles) @ np.diag(scales)
    pose = np.eye(4)
    pose[:3, :3] = linear
    pose[:3, 3] = centre - linear @ centre + shift
    return pose


def random_velocity(rng: np.random.Generator, shape: tuple[int, ...], spacing: float,
                    settings: DemoSettings) -> np.ndarray:
    """A smooth stationary velocity field (3, *shape) in voxels, peak component
    ``deformation_mm``."""
    sigma = settings.smoothness_mm / spacing
    v = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), sigma) for _ in range(3)])
    return (v * (settings.deformation_mm / spacing / np.abs(v).max())).astype(np.float32)


def _sample(field: np.ndarray, coords: np.ndarray, order: int = 1, mode: str = "nearest",
            cval: float = 0.0) -> np.ndarray:
    return ndimage.map_coordinates(field, coords, order=order, mode=mode, cval=cval)


def integrate_velocity(velocity: np.ndarray, steps: int = SQUARING_STEPS) -> np.ndarray:
    """Displacement (3, *shape) of exp(v) by scaling and squaring: u <- u + u o (id + u)."""
    disp = velocity / 2.0**steps
    grid = np.indices(velocity.shape[1:], dtype=np.float32)
    for _ in range(steps):
        at = grid + disp
        disp = disp + np.stack([_sample(disp[c], at) for c in range(3)])
    return disp


def subject_coords(pose: np.ndarray, affine: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """Template voxel coordinates shown by each subject voxel: deformation o pose."""
    shape = disp.shape[1:]
    vox_pose = np.linalg.inv(affine) @ pose @ affine
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    q = (vox_pose[:3, :3] @ grid + vox_pose[:3, 3:4]).reshape(3, *shape)
    return q + np.stack([_sample(disp[c], q) for c in range(3)])


def bias_field(rng: np.random.Generator, shape: tuple[int, ...], spacing: float,
               amplitude: float) -> np.ndarray:
    """A smooth multiplicative field within [1/(1+amplitude), 1+amplitude]."""
    b = ndimage.gaussian_filter(rng.standard_normal(shape), 40.0 / spacing)
    return np.exp(b * (np.log1p(amplitude) / np.abs(b).max())).astype(np.float32)


def rician(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of standard deviation ``sigma``."""
    real = image + rng.normal(0.0, sigma, image.shape)
    imag = rng.normal(0.0, sigma, image.shape)
    return np.sqrt(real**2 + imag**2).astype(np.float32)


def make_subject(template: Template, index: int, seed: int, settings: DemoSettings,
                 atrophy: np.ndarray | None = None) -> SyntheticSubject:
    """Subject number ``index`` (1-based) of the cohort drawn with ``seed``; ``atrophy`` is a
    template-grid voxel displacement (3, *shape) the subject's anatomy is seen through."""
    rng = np.random.default_rng([seed, index])
    spacing = float(voxel_sizes(template.affine).mean())
    brain = np.argwhere(template.labels > 0).mean(0)
    centre = nib.affines.apply_affine(template.affine, brain)
    pose = random_pose(rng, settings, centre)
    disp = integrate_velocity(random_velocity(rng, template.t1.shape, spacing, settings))
    coords = subject_coords(pose, template.affine, disp)
    if atrophy is not None:
        coords = coords + np.stack([_sample(atrophy[c], coords) for c in range(3)])
    t1 = _sample(template.t1, coords, order=1, mode="constant")
    labels = _sample(template.labels, coords, order=0, mode="constant").astype(np.int16)
    brain = t1 > 0
    t1 = t1 * bias_field(rng, t1.shape, spacing, settings.bias)
    t1 = rician(rng, t1, settings.noise * float(np.percentile(template.t1, 99)))
    t1[~brain] = 0.0  # skull-stripped like the template: no noise outside the brain
    return SyntheticSubject(t1, labels, pose, coords)


def write_cohort_sheet(subjects: list[Subject], path: Path) -> None:
    """A sample sheet (subject, t1w, labels) with paths relative to its folder."""
    with atomic_write(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["subject", "t1w", "labels"])
        for s in subjects:
            writer.writerow([s.id, s.t1w.relative_to(path.parent).as_posix(),
                             s.labels.relative_to(path.parent).as_posix()])


def demo_group(index: int) -> str:
    """The group of subject ``index`` (1-based) in a two-group demo: odd control, even patient."""
    return GROUPS[(index - 1) % 2]


def demo_groups(n_subjects: int) -> dict[str, str]:
    """Subject ID -> group of a two-group demo of ``n_subjects`` (what ``participants.tsv``
    will say, known before the demo job writes it)."""
    return {sid: demo_group(index) for index, sid in enumerate(demo_ids(n_subjects), start=1)}


def write_participants(ids: list[str], seed: int, path: Path) -> None:
    """``participants.tsv``: subject, group (alternating) and a random age (no effect)."""
    rng = np.random.default_rng([seed, 0])
    with atomic_write(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["subject", "group", "age"])
        for index, sid in enumerate(ids, start=1):
            writer.writerow([sid, demo_group(index), f"{rng.uniform(*AGE_RANGE):.1f}"])


def atrophy_field(template: Template, settings: DemoSettings, out: Path
                  ) -> np.ndarray | None:
    """The patients' pull-back displacement exp(-v) (voxels), or None without atrophy; writes
    the true log det J of the atrophy exp(v) to ``out``/ATROPHY_TRUTH."""
    if not settings.atrophy:
        return None
    velocity = sink_velocity(template.t1.shape, template.affine, settings.atrophy)
    shrink = integrate_velocity(velocity)
    save_volume(log_jacobian(shrink), template.affine, out / ATROPHY_TRUTH, dtype=np.float32)
    loss = 1.0 - label_volume_ratio(template.labels, ATROPHIED_LABEL, shrink)
    write_text(json.dumps({"label": ATROPHIED_LABEL, "requested_volume_loss": settings.atrophy,
                           "volume_loss": round(loss, 4)}, indent=1), out / "atrophy.json")
    return integrate_velocity(-velocity)


def write_demo(out_dir: str | Path, n_subjects: int, seed: int,
               settings: DemoSettings | None = None) -> list[Subject]:
    """Write ``sub-XX/anat/sub-XX_T1w.nii.gz`` and ``..._dseg.nii.gz`` per subject and
    ``cohort.tsv`` under ``out_dir`` (and the two-group files, see above); return the subjects."""
    settings = (settings or DemoSettings()).check()
    out = Path(out_dir)
    template = demo_template(settings.spacing_mm)
    atrophy = None
    if settings.groups == 2:
        template.labels = paint_hippocampi(template.labels, template.affine)
        atrophy = atrophy_field(template, settings, out)
    subjects = []
    for index, sid in enumerate(demo_ids(n_subjects), start=1):
        subject = demo_subject(sid, out)
        patient = settings.groups == 2 and demo_group(index) == GROUPS[1]
        made = make_subject(template, index, seed, settings, atrophy if patient else None)
        save_volume(made.t1, template.affine, subject.t1w, dtype=np.float32)
        save_volume(made.labels, template.affine, subject.labels, dtype=np.int16)
        subjects.append(subject)
    write_cohort_sheet(subjects, out / "cohort.tsv")
    if settings.groups == 2:
        write_participants([s.id for s in subjects], seed, out / PARTICIPANTS)
    return subjects
