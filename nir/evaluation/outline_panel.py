"""A reference image and an image registered onto it, in three orthogonal slices, with the
reference's label outlines drawn on both (the template QC panel of each subject).

The same outlines at the same places on both rows let the eye check that the registered image's
anatomy sits where the reference's structures are.  Both images are reoriented to RAS (subject's
right on the right), cut through the centre of the labelled region, scaled to [0, 1] by the
99th percentile inside it, and drawn with their true voxel aspect.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from matplotlib.colors import ListedColormap

from nir.evaluation.qc_panel import to_ras
from nir.spatial.geometry import voxel_sizes
from nir.spatial.intensity import percentile_scale
from nir.spatial.io import atomic_write

PLANES = ("sagittal", "coronal", "axial")
OUTLINE = ListedColormap(["#ff3030"])
PANEL_DPI = 80


def label_outline(labels: np.ndarray) -> np.ndarray:
    """True where a pixel of a 2D label slice differs from the pixel before it along either
    axis: one-pixel lines along the structures' borders (the brain's outline included)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    return edge


def _cuts(volume: np.ndarray, centre: np.ndarray) -> list[np.ndarray]:
    """Sagittal, coronal and axial slices of a RAS volume through voxel ``centre``, transposed
    for imshow(origin='lower')."""
    i, j, k = (int(np.rint(c)) for c in centre)
    return [volume[i, :, :].T, volume[:, j, :].T, volume[:, :, k].T]


def _aspects(affine: np.ndarray) -> list[float]:
    """Height / width of one pixel in each of :func:`_cuts`' slices, from the voxel sizes."""
    spacing = np.empty(3)
    for old, (new, _) in enumerate(nib.orientations.io_orientation(affine)):
        spacing[int(new)] = voxel_sizes(affine)[old]
    return [spacing[2] / spacing[1], spacing[2] / spacing[0], spacing[1] / spacing[0]]


def outline_panel(reference: np.ndarray, image: np.ndarray, labels: np.ndarray,
                  affine: np.ndarray, out_png: str | Path, names: tuple[str, str],
                  title: str = "", warn: bool = False) -> Path:
    """Write a PNG: row 1 ``reference``, row 2 ``image`` (both on the grid of ``affine``), each in
    sagittal, coronal and axial slices with the outlines of ``labels`` (the reference's).
    ``names`` label the rows; ``warn`` draws the title in red (a flagged subject)."""
    region = labels > 0
    centre = np.argwhere(to_ras(region, affine)).mean(axis=0) if region.any() else \
        (np.array(labels.shape) - 1) / 2
    outlines = [label_outline(cut) for cut in _cuts(to_ras(labels, affine), centre)]
    aspects = _aspects(affine)
    fig, axes = plt.subplots(2, 3, figsize=(12, 8), facecolor="black")
    for row, (volume, name) in enumerate(zip((reference, image), names, strict=True)):
        scaled = to_ras(percentile_scale(volume, region if region.any() else volume > 0,
                                         high=99.0), affine)
        for column, cut in enumerate(_cuts(scaled, centre)):
            ax = axes[row, column]
            ax.imshow(cut, origin="lower", cmap="gray", vmin=0, vmax=1, aspect=aspects[column],
                      interpolation="nearest")
            ax.imshow(np.ma.masked_where(~outlines[column], outlines[column]), origin="lower",
                      cmap=OUTLINE, alpha=0.8, aspect=aspects[column], interpolation="nearest")
            ax.set_axis_off()
            if row == 0:
                ax.set_title(PLANES[column], color="white")
        axes[row, 0].text(-0.05, 0.5, name, color="white", rotation=90, va="center",
                          ha="right", transform=axes[row, 0].transAxes)
    fig.suptitle(title, color="#ff5050" if warn else "white")
    fig.tight_layout()
    try:
        with atomic_write(out_png) as tmp:
            fig.savefig(tmp, dpi=PANEL_DPI, facecolor="black", format="png")
    finally:
        plt.close(fig)
    return Path(out_png)
