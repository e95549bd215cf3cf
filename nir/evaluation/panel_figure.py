"""The paper's Fig 5: per method, a slice of the warped moving image and of det J at each
convergence record of one pair, with its Dice and % det J <= 0 written on each panel.

The slices come from ``PREFIX_convergence.npz`` (:mod:`nir.engine.panels`), written by
``nir register --track-every N`` beside its summary.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from nir.errors import NirInputError

PANEL_KEYS = ("iteration", "phase", "mean_dice", "folding_percent", "fixed", "warped", "detj")
DETJ_RANGE = (0.0, 2.0)  # colour range of det J; <= 0 is drawn black


def panel_key(path: str | Path) -> tuple[str, str]:
    """(method, pair) of a slices file laid out as the workflow writes it:
    ``.../METHOD/PAIR/PAIR_convergence.npz``."""
    path = Path(path)
    if path.name != f"{path.parent.name}_convergence.npz":
        raise NirInputError(path, "expected METHOD/PAIR/PAIR_convergence.npz (the workflow's "
                                  "layout)")
    return path.parent.parent.name, path.parent.name


def read_panels(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of one slices file; NirInputError naming it if unreadable or incomplete."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise NirInputError(path, f"unreadable convergence slices ({exc})") from exc
    missing = [key for key in PANEL_KEYS if key not in arrays]
    if missing:
        raise NirInputError(path, f"convergence slices lack {missing}")
    return arrays


def _display(image: np.ndarray) -> np.ndarray:
    """A slice turned so that its first voxel axis runs left to right and its second bottom
    to top (``imshow(..., origin="lower")``)."""
    return np.asarray(image).T


def _bright(image: np.ndarray) -> float:
    """The grey level shown as white: the 99.5th percentile of the non-zero voxels."""
    inside = image[image > 0]
    return float(np.percentile(inside, 99.5)) if inside.size else 1.0


def panels_figure(panels: dict[str, dict[str, np.ndarray]], pair: str,
                  methods: Sequence[str] | None = None) -> Figure:
    """Two rows per method (warped moving image, det J) and one column per record."""
    methods = list(panels if methods is None else methods)
    columns = max((len(panels[m]["iteration"]) for m in methods), default=1)
    fig = Figure(figsize=(1.9 * columns + 0.6, 2.0 * 2 * max(len(methods), 1) + 0.6),
                 layout="constrained")
    if not methods:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no convergence slices", ha="center", va="center")
        return fig
    axes = fig.subplots(2 * len(methods), columns, squeeze=False)
    cmap = colormaps["RdBu_r"].with_extremes(under="black")
    norm = TwoSlopeNorm(vmin=1e-6, vcenter=1.0, vmax=DETJ_RANGE[1])
    shown = None
    for row, method in enumerate(methods):
        data = panels[method]
        scale = _bright(data["fixed"])
        for col in range(columns):
            image_ax, detj_ax = axes[2 * row, col], axes[2 * row + 1, col]
            for ax in (image_ax, detj_ax):
                ax.set_xticks([])
                ax.set_yticks([])
            if col >= len(data["iteration"]):
                image_ax.set_axis_off()
                detj_ax.set_axis_off()
                continue
            image_ax.imshow(_display(data["warped"][col]), cmap="gray", origin="lower",
                            vmin=0.0, vmax=scale)
            shown = detj_ax.imshow(_display(data["detj"][col]), cmap=cmap, norm=norm,
                                   origin="lower")
            image_ax.set_title(f"it {int(data['iteration'][col])} ({data['phase'][col]})",
                               fontsize="small")
            detj_ax.text(0.02, 0.02, f"Dice {float(data['mean_dice'][col]):.3f}\n"
                                     f"det J≤0 {float(data['folding_percent'][col]):.4f} %",
                         transform=detj_ax.transAxes, fontsize="x-small", color="white",
                         bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.5})
        axes[2 * row, 0].set_ylabel(f"{method}\nwarped moving", fontsize="small")
        axes[2 * row + 1, 0].set_ylabel(f"{method}\ndet J", fontsize="small")
    if shown is not None:
        fig.colorbar(shown, ax=axes[1::2, -1].tolist(), shrink=0.6, extend="min",
                     label="det J (black: ≤ 0)")
    fig.suptitle(f"Registration during the fit, pair {pair}: warped moving image and det J "
                 "(axial slice through the centre of the fixed brain)")
    return fig
