"""The paper figures: convergence curves and the ranking chart, in the cohort figures' colours."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nir.evaluation.ranking import ASPECTS

FOLDING_LINEAR_BELOW = 1e-3  # % det J <= 0: the symlog axis is linear below this


def _band(ax: Axes, x: pd.Series, mean: pd.Series, sd: pd.Series, colour: tuple,
          label: str) -> None:
    """A mean line with a shaded mean +- sd band (no band where sd is undefined)."""
    ax.plot(x, mean, color=colour, label=label, linewidth=1.5, marker="o", markersize=2.5)
    spread = sd.fillna(0.0)
    ax.fill_between(x, mean - spread, mean + spread, color=colour, alpha=0.2, linewidth=0)


def convergence_figure(curves: pd.DataFrame, palette: dict[str, tuple]) -> Figure:
    """Mean Dice and % det J <= 0 against iteration and against fit seconds, one line per
    method (mean over pairs, band: +- sd over pairs); from
    :func:`nir.evaluation.convergence.convergence_curves`."""
    fig = Figure(figsize=(11.0, 7.5), layout="constrained")
    axes = fig.subplots(2, 2, sharey="row")
    if curves.empty:
        for ax in axes.ravel():
            ax.text(0.5, 0.5, "no convergence records (track_every: 0)", ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return fig
    methods = [m for m in palette if m in set(curves["method"])]
    for method in methods:
        curve = curves[curves["method"] == method]
        for column, x in enumerate(("iteration", "seconds")):
            _band(axes[0, column], curve[x], curve["dice_mean"], curve["dice_sd"],
                  palette[method], method)
            _band(axes[1, column], curve[x], curve["folding_mean"], curve["folding_sd"],
                  palette[method], method)
    for column, xlabel in enumerate(("iteration", "fit time (s, mean over pairs)")):
        axes[1, column].set_xlabel(xlabel)
        axes[1, column].set_yscale("symlog", linthresh=FOLDING_LINEAR_BELOW)
        axes[1, column].set_ylim(bottom=0)
    axes[0, 0].set_ylabel("mean Dice")
    axes[1, 0].set_ylabel("% voxels with det J ≤ 0")
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
    n_pairs = int(curves["n_pairs"].max())
    fig.suptitle(f"Convergence: mean ± sd over {n_pairs} pair{'s' * (n_pairs != 1)}")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper",
               title="method", fontsize="small")
    return fig


def memory_label(measures: pd.Series) -> str:
    """The memory axis's label: GPU, RSS, or both when the methods were measured differently."""
    kinds = set(measures)
    if kinds == {"GPU"}:
        return "GPU memory"
    return "RSS" if kinds == {"CPU RSS"} else "GPU memory / RSS"


def ranking_figure(ranking: pd.DataFrame, palette: dict[str, tuple]) -> Figure:
    """A radar chart of each method's rank on the :data:`~nir.evaluation.ranking.ASPECTS`
    (outer ring = rank 1, the best), from :func:`nir.evaluation.ranking.ranking_table`."""
    fig = Figure(figsize=(6.5, 7.0), layout="constrained")
    ax = fig.add_subplot(projection="polar")
    n = len(ranking)
    if not n:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no deformable method to rank", ha="center", va="center",
                transform=ax.transAxes)
        return fig
    angles = np.linspace(0, 2 * np.pi, len(ASPECTS), endpoint=False)
    closed = np.append(angles, angles[0])
    for _, row in ranking.iterrows():
        ranks = np.array([row[f"rank_{aspect}"] for aspect in ASPECTS], dtype=float)
        radius = np.append(n + 1 - ranks, n + 1 - ranks[0])
        colour = palette[row["method"]]
        ax.plot(closed, radius, color=colour, linewidth=1.5, marker="o", markersize=3,
                label=f"{row['method']} (mean rank {row['mean_rank']:.2f})")
        ax.fill(closed, radius, color=colour, alpha=0.08)
    labels = {"accuracy": "accuracy\n(mean Dice)",
              "regularity": "regularity\n(% det J ≤ 0,\nthen SDlogJ)",
              "time": "time\n(s per pair)",
              "memory": f"memory\n(peak {memory_label(ranking['memory_measure'])})"}
    ax.set_xticks(angles, [labels[aspect] for aspect in ASPECTS])
    ax.tick_params(axis="x", pad=14)
    ax.set_ylim(0, n + 0.5)
    ax.set_yticks(np.arange(1, n + 1), [str(n + 1 - r) for r in range(1, n + 1)],
                  fontsize="x-small")
    ax.set_title("Rank on each aspect (outer ring = best)")
    fig.legend(loc="outside lower center", ncols=2, fontsize="small", title="method")
    return fig
