"""The table of significant clusters of a voxelwise test: each cluster's size, peak, corrected p,
peak coordinates in template and MNI mm, and the template structures it lies in.

A cluster is a set of significant voxels connected through their faces (the connectivity of the
TFCE, :mod:`nir.stats.tfce`) whose statistic has one sign; clusters are numbered by size, the
largest first. The peak is the voxel of largest |t|; the corrected p of a cluster is the
smallest corrected p among its voxels (each voxel's FWE p, or BH q with FDR).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from nir.evaluation.labels import label_name
from nir.markdown import markdown_table
from nir.spatial.io import load_labels, load_volume, write_csv, write_text
from nir.stats.tbm import map_paths
from nir.stats.volumes import voxel_volume

STRUCTURES_LISTED = 3  # the largest shares of a cluster named in ``structures``
COLUMNS = ["cluster", "direction", "voxels", "volume_mm3", "peak_t", "peak_tfce", "p_corrected",
           "peak_effect_percent", "x_mm", "y_mm", "z_mm", "mni_x", "mni_y", "mni_z",
           "structure", "structures"]


@dataclass(frozen=True)
class GroupMaps:
    """The maps of one voxelwise test on the template grid (see :mod:`nir.stats.tbm`)."""

    t: np.ndarray
    q: np.ndarray  # corrected p
    significant: np.ndarray
    effect: np.ndarray  # log-J difference, compared - reference
    affine: np.ndarray
    tfce: np.ndarray | None = None

    @classmethod
    def read(cls, paths: Sequence[str | Path]) -> GroupMaps:
        """The maps from the ``tbm_{name}.nii.gz`` files among ``paths``."""
        volumes = {name: load_volume(path) for name, path in map_paths(paths).items()}
        arrays = {name: v.data.numpy() for name, v in volumes.items()}
        return cls(arrays["t"], arrays["q"], arrays["significant"], arrays["effect"],
                   volumes["t"].affine, arrays.get("tfce"))


def cluster_table(maps: GroupMaps, labels: np.ndarray, to_mni: np.ndarray,
                  levels: tuple[str, str]) -> pd.DataFrame:
    """One row per cluster (columns :data:`COLUMNS`). ``labels``: the template's label map
    (FreeSurfer IDs) on the same grid; ``to_mni``: 4x4 template world -> MNI world (mm);
    ``levels``: (reference, compared) group names for the direction."""
    significant = np.asarray(maps.significant) > 0
    t = np.asarray(maps.t, dtype=np.float64)
    per_voxel = voxel_volume(maps.affine)
    rows = []
    for sign, relation in ((-1.0, "<"), (1.0, ">")):
        components = ndimage.label(significant & (np.sign(t) == sign))[0].ravel()
        inside = np.flatnonzero(components)
        by_cluster = inside[np.argsort(components[inside], kind="stable")]
        ends = np.cumsum(np.bincount(components[inside])[1:])
        for voxels in np.split(by_cluster, ends[:-1]) if len(inside) else []:
            peak_flat = voxels[np.argmax(np.abs(t.ravel()[voxels]))]
            peak = np.unravel_index(peak_flat, t.shape)
            world = nib.affines.apply_affine(maps.affine, peak)
            mni = nib.affines.apply_affine(to_mni, world)
            rows.append({
                "direction": f"{levels[1]} {relation} {levels[0]}",
                "voxels": len(voxels), "volume_mm3": round(len(voxels) * per_voxel, 1),
                "peak_t": round(float(t[peak]), 3),
                "peak_tfce": (round(float(maps.tfce[peak]), 1) if maps.tfce is not None
                              else None),
                "p_corrected": float(np.asarray(maps.q).ravel()[voxels].min()),
                "peak_effect_percent": round(100.0 * float(np.expm1(maps.effect[peak])), 2),
                **{f"{axis}_mm": round(float(v), 1) for axis, v in zip("xyz", world,
                                                                      strict=True)},
                **{f"mni_{axis}": round(float(v), 1) for axis, v in zip("xyz", mni,
                                                                       strict=True)},
                "structure": label_name(int(labels[peak])),
                "structures": _shares(np.asarray(labels).ravel()[voxels]),
            })
    table = pd.DataFrame(rows, columns=COLUMNS[1:])
    table = table.sort_values(["voxels", "p_corrected"], ascending=[False, True],
                              kind="stable").reset_index(drop=True)
    table.insert(0, "cluster", np.arange(1, len(table) + 1))
    return table


def _shares(labels: np.ndarray) -> str:
    """The structures covering the most of a cluster's voxels, with their share: 'A 60 %; B
    30 %'."""
    found, counts = np.unique(labels, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:STRUCTURES_LISTED]
    return "; ".join(f"{label_name(int(found[i])) if found[i] else 'outside the labels'} "
                     f"{round(100 * counts[i] / len(labels))} %" for i in order)


def cluster_markdown(table: pd.DataFrame, caption: str) -> str:
    """The cluster table as a GitHub Markdown table under ``caption``."""
    header = ["cluster", "direction", "voxels", "mm³", "peak t", "peak TFCE", "p (corr.)",
              "effect at peak", "template x, y, z (mm)", "MNI x, y, z (mm)", "structure at peak",
              "structures"]
    rows = [[str(row.cluster), row.direction, str(row.voxels), f"{row.volume_mm3:g}",
             f"{row.peak_t:.2f}", "–" if pd.isna(row.peak_tfce) else f"{row.peak_tfce:g}",
             f"{row.p_corrected:.3g}", f"{row.peak_effect_percent:+.1f} %",
             f"{row.x_mm:g}, {row.y_mm:g}, {row.z_mm:g}",
             f"{row.mni_x:g}, {row.mni_y:g}, {row.mni_z:g}", row.structure, row.structures]
            for row in table.itertuples(index=False)]
    if table.empty:
        rows = [["no significant cluster"] + [""] * (len(header) - 1)]
    return "\n".join([caption, "", *markdown_table(header, rows)]) + "\n"


def write_clusters(maps: Sequence[str | Path], summary: str | Path, labels: str | Path,
                   to_mni: np.ndarray, csv_out: str | Path, markdown_out: str | Path
                   ) -> pd.DataFrame:
    """The cluster table of the test whose maps and ``tbm_summary.json`` are given, as CSV and
    Markdown (the Markdown's caption says what the test was)."""
    record: dict[str, Any] = json.loads(Path(summary).read_text())
    table = cluster_table(GroupMaps.read(maps), load_labels(labels).data.numpy(), to_mni,
                          tuple(record["levels"]))
    caption = (f"Clusters of {record['contrast']} at corrected p ≤ {record['q']} "
               f"({record['correction']}); covariates: "
               f"{', '.join(record['covariates']) or 'none'}.")
    write_csv(table, csv_out)
    write_text(cluster_markdown(table, caption), markdown_out)
    return table
