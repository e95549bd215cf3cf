"""Figures of a template study: template progress per iteration, the t-map over the template,
and per-structure effect sizes (PNG and SVG, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nir.evaluation.figures import save_figure


def template_progress_figure(progress: pd.DataFrame, affine_dice: float | None = None
                             ) -> Figure:
    """Sharpness, bias (mean displacement norm) and group-wise Dice of each iteration's template."""
    panels = [("sharpness", "sharpness (mean |∇T|, 1/mm)"),
              ("mean_displacement_mm", "|mean displacement| (mm)")]
    if "groupwise_dice" in progress:
        panels.append(("groupwise_dice", "group-wise Dice"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (column, label) in zip(axes, panels, strict=True):
        ax.plot(progress["iteration"], progress[column], marker="o")
        ax.set_xlabel("iteration (0 = initial template)")
        ax.set_ylabel(label)
        ax.set_xticks(progress["iteration"])
    if affine_dice is not None and "groupwise_dice" in progress:
        axes[-1].axhline(affine_dice, color="grey", linestyle="--", label="affine only")
        axes[-1].legend(frameon=False)
    fig.tight_layout()
    return fig


def _level(summary: dict[str, Any]) -> tuple[str, str]:
    """The statistic's name and the significance criterion, as the summary says."""
    method = summary.get("correction_method")
    smoothed = method in ("tfce", "fwe") and summary.get("variance_fwhm_mm")
    level = {"tfce": f"TFCE FWE p≤{summary['q']}", "fwe": f"FWE p≤{summary['q']}"}.get(
        method, f"FDR q≤{summary['q']}")
    return ("pseudo-t" if smoothed else "t"), level


def significant_t(tmap: str | Path, significant: str | Path) -> nib.Nifti1Image:
    """The t-map with the voxels that are not significant set to zero."""
    t = nib.load(str(tmap))
    keep = np.asarray(nib.load(str(significant)).dataobj) > 0
    return nib.Nifti1Image(np.where(keep, t.get_fdata(dtype=np.float32), 0.0).astype(np.float32),
                           t.affine, t.header)


def tmap_figure(tmap: str | Path, significant: str | Path, template: str | Path,
                summary: dict[str, Any]) -> Figure:
    """Orthogonal slices through the peak of the t-map over the template: the significant
    voxels only (corrected as the summary says) when any survive, else the whole map."""
    from nilearn import plotting

    fig = plt.figure(figsize=(9, 3.4))
    count = summary["significant_voxels"]
    stat, level = _level(summary)
    title = (f"{stat} ({summary['contrast']}), {level}: {count} voxels" if count
             else f"{stat} ({summary['contrast']}): no voxel survives {level}")
    image = significant_t(tmap, significant) if count else str(tmap)
    plotting.plot_stat_map(image, bg_img=str(template), cut_coords=summary["peak_mm"],
                           threshold=1e-6 if count else None, display_mode="ortho",
                           figure=fig, title=title, draw_cross=False, black_bg=False,
                           annotate=True)
    return fig


def glass_figure(tmap: str | Path, significant: str | Path, summary: dict[str, Any],
                 clusters: pd.DataFrame) -> Figure:
    """Glass brain of the significant voxels' t (the corrected map), each cluster's peak
    marked with its number in the cluster table (template mm)."""
    from nilearn import plotting

    fig = plt.figure(figsize=(9, 3.4))
    stat, level = _level(summary)
    count = summary["significant_voxels"]
    title = (f"{stat} ({summary['contrast']}) where {level}: {len(clusters)} cluster(s)"
             if count else f"no voxel survives {level}")
    display = plotting.plot_glass_brain(significant_t(tmap, significant), threshold=1e-6,
                                        plot_abs=False, colorbar=bool(count), figure=fig,
                                        title=title, black_bg=False, display_mode="ortho")
    if len(clusters):
        peaks = clusters[["x_mm", "y_mm", "z_mm"]].to_numpy(float)
        display.add_markers(peaks, marker_color="k", marker_size=12)
        planes = {"x": (1, 2), "y": (0, 2), "z": (0, 1)}  # the world axes each view shows
        for direction, axes in display.axes.items():
            for number, peak in zip(clusters["cluster"], peaks, strict=True):
                first, second = planes[direction]
                axes.ax.annotate(str(number), (peak[first], peak[second]),
                                 xytext=(4, 4), textcoords="offset points", fontsize=8)
    return fig


def effect_size_figure(tests: pd.DataFrame, q: float = 0.05) -> Figure:
    """Cohen's d per structure (rows) and volume source (colours); filled when FDR-significant."""
    order = (tests[tests["source"] == tests["source"].iloc[0]]
             .sort_values("cohens_d")["structure"].tolist())
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(order) + 1.2))
    for offset, (source, part) in zip((-0.15, 0.15), tests.groupby("source", sort=False),
                                      strict=False):
        part = part.set_index("structure").reindex(order)
        y = [i + offset for i in range(len(order))]
        colour = "C0" if source == "jacobian" else "C1"
        ax.scatter(part["cohens_d"], y, facecolors="none", edgecolors=colour, label=source)
        hit = part["significant"].fillna(False).astype(bool).to_numpy()
        ax.scatter(part["cohens_d"][hit], [v for v, h in zip(y, hit, strict=True) if h],
                   color=colour)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(order)), order)
    ax.set_xlabel(f"Cohen's d (filled: FDR q < {q})")
    ax.legend(frameon=False, title="volume")
    fig.tight_layout()
    return fig


def write_figure(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``name``.png/.svg in ``out_dir`` and close it."""
    try:
        return save_figure(fig, out_dir, name)
    finally:
        plt.close(fig)
