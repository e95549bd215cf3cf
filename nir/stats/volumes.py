"""Per-structure volumes of every subject and their group test, and each subject's total
intracranial volume (TIV).

Two estimates per structure: ``jacobian``, the template label integrated against the subject's
det J (its volume in the affinely normalised space the template lives in), and ``native``, the
voxel count of the subject's own label map times its voxel volume. The TIV is the voxel count of
the subject's native brain mask times its voxel volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nir.evaluation.labels import ASEG_STRUCTURES
from nir.spatial.io import load_labels, load_volume
from nir.stats.glm import cohens_d, fdr, fit_contrast
from nir.study.design import Design, read_design


def voxel_volume(affine: np.ndarray) -> float:
    """mm³ of one voxel of ``affine``'s grid."""
    return float(abs(np.linalg.det(affine[:3, :3])))


def mask_volume_ml(path: str | Path) -> float:
    """Volume in ml of the voxels > 0 of the mask at ``path``, on its own grid."""
    mask = load_labels(path)
    return float(np.count_nonzero(mask.data.numpy() > 0)) * voxel_volume(mask.affine) / 1000.0


def tiv_table(masks: Sequence[str | Path], subjects: Sequence[str]) -> pd.DataFrame:
    """(subject, tiv_ml): the native brain-mask volume of each subject."""
    return pd.DataFrame({"subject": list(subjects),
                         "tiv_ml": [mask_volume_ml(m) for m in masks]})


def read_tiv(path: str | Path) -> dict[str, float]:
    """The TIV per subject from a table written from :func:`tiv_table`."""
    table = pd.read_csv(path, dtype={"subject": str})
    return dict(zip(table["subject"], table["tiv_ml"].astype(float), strict=True))


def design_with_tiv(table: str | Path, subjects: Sequence[str], settings: Mapping[str, Any],
                    tiv: str | Path | None = None) -> Design:
    """The design of ``subjects`` from ``table`` (:func:`~nir.study.design.read_design` with
    the keyword ``settings``), with the TIV of the table ``tiv`` when the workflow computed
    it."""
    computed = {"tiv": read_tiv(tiv)} if tiv else None
    return read_design(table, subjects, **settings, computed=computed)


def structures(labels: np.ndarray) -> dict[int, str]:
    """The aseg structures present in ``labels``, by ID."""
    present = set(np.unique(labels).tolist())
    return {label: name for label, name in ASEG_STRUCTURES.items() if label in present}


def jacobian_volumes(template_labels: str | Path, jacobians: Sequence[str | Path],
                     design: Design) -> pd.DataFrame:
    """Long table (source, subject, group, label, structure, volume_mm3) of template labels x J."""
    labels_v = load_labels(template_labels)
    labels = labels_v.data.numpy()
    named = structures(labels)
    per_voxel = voxel_volume(labels_v.affine)
    rows = []
    for sid, group, path in zip(design.subjects, design.groups, jacobians, strict=True):
        detj = load_volume(path).data.numpy()
        sums = np.bincount(labels.ravel(), weights=detj.ravel(), minlength=max(named) + 1)
        rows += [("jacobian", sid, group, label, name, float(sums[label]) * per_voxel)
                 for label, name in named.items()]
    return pd.DataFrame(rows, columns=["source", "subject", "group", "label", "structure",
                                       "volume_mm3"])


def native_volumes(label_maps: Sequence[str | Path], design: Design,
                   keep: dict[int, str]) -> pd.DataFrame:
    """Long table of the structures ``keep`` in each subject's own label map."""
    rows = []
    for sid, group, path in zip(design.subjects, design.groups, label_maps, strict=True):
        volume = load_labels(path)
        counts = np.bincount(volume.data.numpy().ravel().clip(0), minlength=max(keep) + 1)
        rows += [("native", sid, group, label, name,
                  float(counts[label]) * voxel_volume(volume.affine))
                 for label, name in keep.items()]
    return pd.DataFrame(rows, columns=["source", "subject", "group", "label", "structure",
                                       "volume_mm3"])


def structure_tests(volumes: pd.DataFrame, design: Design, q: float = 0.05) -> pd.DataFrame:
    """Per source and structure: group means, % difference, Cohen's d, and the GLM's t and p of
    the group contrast (with the design's covariates), BH-FDR adjusted over the structures of
    each source."""
    X = design.matrix()
    contrast = np.zeros(X.shape[1])
    contrast[1] = 1.0
    indicator = design.indicator
    frames = []
    for source, part in volumes.groupby("source", sort=False):
        wide = part.pivot_table(index="subject", columns="label", values="volume_mm3")
        y = wide.loc[list(design.subjects)].to_numpy()
        test = fit_contrast(y, X, contrast)
        adjusted, significant = fdr(test.p, q)
        reference, compared = y[indicator == 0].mean(0), y[indicator == 1].mean(0)
        names = part.drop_duplicates("label").set_index("label")["structure"]
        frames.append(pd.DataFrame({
            "source": source, "label": wide.columns, "structure": names[wide.columns].values,
            f"mean_{design.levels[0]}_mm3": reference, f"mean_{design.levels[1]}_mm3": compared,
            "percent_difference": 100.0 * (compared - reference) / reference,
            "cohens_d": cohens_d(y, indicator), "t": test.t, "p": test.p, "q": adjusted,
            "significant": significant}))
    return pd.concat(frames, ignore_index=True)
