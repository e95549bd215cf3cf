"""Cohort figures (PNG, SVG and PDF) from the tables directory written by ``nir tables``.

Point clouds (one marker per pair: scatter, strip and box-plot outliers) are rasterized at
:data:`DPI` inside the vector formats, axes and text stay vectors: a 9,900-pair cohort's
figures then take seconds to write and stay small.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from nir.errors import NirInputError
from nir.evaluation.label_table import LabelTable
from nir.evaluation.tables import (
    comparison_frame,
    method_order,
    pair_metrics,
    read_pairs,
    structure_dice,
)
from nir.spatial.io import atomic_write

FORMATS = ("png", "svg", "pdf")
FIGURES = ("dice_per_structure", "dice_vs_folding", "runtime")  # what write_figures draws
DPI = 150


def save_figure(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``fig`` as ``name.<format>`` for each of :data:`FORMATS` in ``out_dir``, atomically."""
    written = []
    for fmt in FORMATS:
        final = Path(out_dir) / f"{name}.{fmt}"
        with atomic_write(final) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight")
        written.append(final)
    return written


def method_palette(methods: list[str]) -> dict[str, tuple]:
    """One colour per method (in :func:`method_order`), shared by every figure."""
    ordered = method_order(methods)
    return dict(zip(ordered, sns.color_palette("colorblind", len(ordered)), strict=True))


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def dice_per_structure_figure(comparison: pd.DataFrame, palette: dict[str, tuple]) -> Figure:
    """Boxplots of left/right-merged Dice per structure, one box per method."""
    merged = structure_dice(comparison).dropna(subset=["dice"])
    methods = method_order(merged["method"].unique().tolist())
    n_structures = max(merged["structure"].nunique(), 1)
    fig = Figure(figsize=(max(6.0, 0.25 * n_structures * max(len(methods), 1) + 3), 4.5))
    ax = fig.add_subplot()
    if merged.empty:
        _no_data(ax, "no per-structure Dice")
        return fig
    sns.boxplot(data=merged, x="structure", y="dice", hue="method", hue_order=methods,
                palette=palette, fliersize=2, linewidth=0.8, ax=ax,
                flierprops={"rasterized": True})
    ax.set_xlabel("")
    ax.set_ylabel("Dice (left/right merged)")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", labelrotation=60)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.legend(title="method", loc="lower left", fontsize="small")
    return fig


def dice_vs_folding_figure(wide: pd.DataFrame, palette: dict[str, tuple]) -> Figure:
    """Per-pair mean Dice against folding percentage, coloured by method."""
    data = wide.dropna(subset=["mean_dice", "folding_percent"])
    methods = method_order(data["method"].unique().tolist())
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    if data.empty:
        _no_data(ax, "no per-pair Dice / folding values")
        return fig
    sns.scatterplot(data=data, x="folding_percent", y="mean_dice", hue="method",
                    hue_order=methods, palette=palette, style="method",
                    style_order=methods, s=45, rasterized=True, ax=ax)
    ax.set_xlabel("folding (% of mask voxels with det J ≤ 0)")
    ax.set_ylabel("mean Dice")
    return fig


def runtime_figure(wide: pd.DataFrame, palette: dict[str, tuple]) -> Figure:
    """Registration time per pair, as bars (mean) with the individual pairs on top."""
    data = wide.dropna(subset=["seconds"])
    methods = method_order(data["method"].unique().tolist())
    fig = Figure(figsize=(max(4.0, 1.3 * len(methods) + 2), 4.0))
    ax = fig.add_subplot()
    if data.empty:
        _no_data(ax, "no runtime recorded")
        return fig
    sns.barplot(data=data, x="method", y="seconds", hue="method", order=methods,
                hue_order=methods, palette=palette, errorbar="sd", alpha=0.6, legend=False, ax=ax)
    sns.stripplot(data=data, x="method", y="seconds", order=methods, color="black", size=4,
                  rasterized=True, ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel("registration time per pair (s)")
    return fig


def write_figures(tables_dir: str | Path, out_dir: str | Path,
                  table: LabelTable | None = None) -> list[Path]:
    """Draw dice_per_structure, dice_vs_folding and runtime from ``tables_dir/pairs.csv``
    (structure names, and so the left/right merge, from ``table`` when given)."""
    pairs_csv = Path(tables_dir) / "pairs.csv"
    if not pairs_csv.exists():
        raise NirInputError(pairs_csv, "file does not exist (run 'nir tables' first)")
    comparison = comparison_frame(read_pairs([pairs_csv], table))
    wide = pair_metrics(comparison)
    palette = method_palette(comparison["method"].unique().tolist())
    figures = dict(zip(FIGURES, (dice_per_structure_figure(comparison, palette),
                                 dice_vs_folding_figure(wide, palette),
                                 runtime_figure(wide, palette)), strict=True))
    return [path for name, fig in figures.items() for path in save_figure(fig, out_dir, name)]
