"""The cluster table: sizes in mm³, peaks, corrected p, template and MNI coordinates and the
structures named from the template's labels; its files; and the template's affine to MNI152
recovering a known shift."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from nir.preprocess.template import mni152_file
from nir.spatial.io import save_volume
from nir.stats.clusters import GroupMaps, cluster_table, write_clusters
from nir.study.mni import read_mni_transform, write_mni_transform

SHAPE = (20, 24, 18)
AFFINE = np.array([[2.0, 0, 0, -20.0], [0, 2.0, 0, -30.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])


def _maps() -> tuple[GroupMaps, np.ndarray]:
    """A negative cluster of 4x3x2 = 24 voxels mostly in label 17 (peak t -6 at (5, 6, 4)),
    a positive one of 2 voxels in label 53, and a negative voxel below the level."""
    t = np.zeros(SHAPE, np.float32)
    significant = np.zeros(SHAPE, np.uint8)
    q = np.ones(SHAPE, np.float32)
    labels = np.zeros(SHAPE, np.int32)
    t[4:8, 5:8, 3:5] = -3.0
    t[5, 6, 4] = -6.0
    significant[4:8, 5:8, 3:5] = 1
    q[4:8, 5:8, 3:5] = 0.04
    q[5, 6, 4] = 0.002
    labels[4:7, 5:8, 3:5] = 17
    labels[7, 5:8, 3:5] = 2
    t[12, 12, 9:11] = 4.0
    significant[12, 12, 9:11] = 1
    q[12, 12, 9:11] = 0.03
    labels[12, 12, 9:11] = 53
    t[15, 3, 3] = -5.0  # not significant: no cluster
    effect = np.where(t < 0, np.log(0.9), 0.0).astype(np.float32)
    return GroupMaps(t, q, significant, effect, AFFINE, tfce=t * 100.0), labels


def test_cluster_table_sizes_peaks_coordinates_and_structures() -> None:
    maps, labels = _maps()
    to_mni = np.eye(4)
    to_mni[:3, 3] = [1.0, -2.0, 3.0]
    table = cluster_table(maps, labels, to_mni, ("control", "patient")).set_index("cluster")
    assert list(table.index) == [1, 2]  # the larger first
    first, second = table.loc[1], table.loc[2]
    assert first["direction"] == "patient < control" and second["direction"] == "patient > control"
    assert first["voxels"] == 24 and first["volume_mm3"] == 24 * 8.0
    assert second["voxels"] == 2 and second["volume_mm3"] == 16.0
    assert first["peak_t"] == -6.0 and first["peak_tfce"] == -600.0
    assert first["p_corrected"] == pytest.approx(0.002)
    assert second["p_corrected"] == pytest.approx(0.03)
    assert first["peak_effect_percent"] == pytest.approx(-10.0)
    world = AFFINE @ np.array([5, 6, 4, 1.0])
    assert [first[c] for c in ("x_mm", "y_mm", "z_mm")] == pytest.approx(world[:3])
    assert [first[c] for c in ("mni_x", "mni_y", "mni_z")] == pytest.approx(
        world[:3] + np.array([1.0, -2.0, 3.0]))
    assert first["structure"] == "Left-Hippocampus"
    assert first["structures"] == "Left-Hippocampus 75 %; Left-Cerebral-White-Matter 25 %"
    assert second["structure"] == "Right-Hippocampus"


def test_cluster_files_and_an_empty_table(tmp_path: Path) -> None:
    maps, labels = _maps()
    paths = []
    for name in ("t", "q", "significant", "effect", "tfce"):
        paths.append(save_volume(getattr(maps, name), AFFINE, tmp_path / f"tbm_{name}.nii.gz"))
    labels_path = save_volume(labels, AFFINE, tmp_path / "labels.nii.gz")
    summary = tmp_path / "tbm_summary.json"
    summary.write_text(json.dumps({"contrast": "patient - control",
                                   "levels": ["control", "patient"], "q": 0.05,
                                   "correction": "TFCE of the pseudo-t", "covariates": ["age"]}))
    csv, md = tmp_path / "clusters.csv", tmp_path / "clusters.md"
    write_clusters(paths, summary, labels_path, np.eye(4), csv, md)
    table = pd.read_csv(csv)
    assert len(table) == 2 and table.loc[0, "structure"] == "Left-Hippocampus"
    text = md.read_text()
    assert text.startswith("Clusters of patient - control at corrected p ≤ 0.05 (TFCE")
    assert "| 1 | patient < control | 24 | 192 | -6.00 | -600 | 0.002 |" in text
    assert len(text.strip().splitlines()) == 2 + 2 + 2  # caption, blank, header, rule, rows

    empty = GroupMaps(maps.t, maps.q, np.zeros(SHAPE, np.uint8), maps.effect, AFFINE)
    none = cluster_table(empty, labels, np.eye(4), ("control", "patient"))
    assert none.empty and "peak_tfce" in none.columns


def test_template_to_mni_recovers_a_shift(tmp_path: Path) -> None:
    """nilearn's MNI152 T1 at 2 mm, saved with its world frame shifted by (6, -4, 3) mm: the
    affine to MNI maps the shifted frame back, to within 1 mm over the brain."""
    mni = nib.load(str(mni152_file("t1")))
    data = np.asarray(mni.dataobj, dtype=np.float32)[::2, ::2, ::2]
    affine = mni.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    shift = np.array([6.0, -4.0, 3.0])
    shifted = affine.copy()
    shifted[:3, 3] += shift
    template = save_volume(ndimage.gaussian_filter(data, 0.5), shifted,
                           tmp_path / "template.nii.gz")
    out = tmp_path / "to_mni.json"
    matrix = write_mni_transform(template, out)
    assert np.array_equal(read_mni_transform(out), np.round(matrix, 8))
    brain = nib.affines.apply_affine(shifted, np.argwhere(data > 0.2 * data.max())[::50])
    error = np.linalg.norm(nib.affines.apply_affine(matrix, brain) - (brain - shift), axis=1)
    print(f"MNI mapping error over the brain: mean {error.mean():.2f}, max {error.max():.2f} mm")
    assert error.max() < 1.0
    assert json.loads(out.read_text())["ncc"] > 0.9
