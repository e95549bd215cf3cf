"""Figures of a template study: template progress per iteration, the t-map over the template,
and per-structure effect sizes (PNG and SVG, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
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


def tmap_figure(tmap: str | Path, template: str | Path, summary: dict[str, Any]) -> Figure:
    """Orthogonal slices through the peak of the t-map over the template; thresholded at the
    smallest significant |t| (FWE or FDR, as the summary says) when any voxel survives, else
    unthresholded."""
    from nilearn import plotting

    fig = plt.figure(figsize=(9, 3.4))
    threshold = summary.get("t_threshold")
    count = summary["significant_voxels"]
    fwe = summary.get("correction_method") == "fwe"
    level = f"FWE p≤{summary['q']}" if fwe else f"FDR q≤{summary['q']}"
    stat = "pseudo-t" if fwe and summary.get("variance_fwhm_mm") else "t"
    title = (f"{stat} ({summary['contrast']}), {level}: {count} voxels" if threshold
             else f"{stat} ({summary['contrast']}): no voxel survives {level}")
    plotting.plot_stat_map(str(tmap), bg_img=str(template), cut_coords=summary["peak_mm"],
                           threshold=threshold, display_mode="ortho", figure=fig,
                           title=title, draw_cross=False, black_bg=False, annotate=True)
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
