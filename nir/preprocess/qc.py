"""Quality-control figure: brain-mask outline on the native image and template overlay."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from nir.spatial.io import atomic_write


def _planes(volume: np.ndarray, centre: np.ndarray) -> list[np.ndarray]:
    """Sagittal, coronal and axial slices of a RAS array through voxel ``centre``."""
    i, j, k = (int(np.rint(c)) for c in centre)
    return [volume[i, :, :], volume[:, j, :], volume[:, :, k]]


def save_qc_figure(native: np.ndarray, mask: np.ndarray, aligned: np.ndarray,
                   template: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Row 1: native canonical image with the mask outline; row 2: aligned image (grey) with the
    template edges (red) in the common grid."""
    fig, axes = plt.subplots(2, 3, figsize=(12, 8), facecolor="black")
    mask_centre = np.argwhere(mask).mean(axis=0) if mask.any() else np.array(mask.shape) / 2
    grid_centre = (np.array(aligned.shape) - 1) / 2
    row1 = zip(_planes(native, mask_centre), _planes(mask.astype(float), mask_centre),
               strict=True)
    row2 = zip(_planes(aligned, grid_centre), _planes(template, grid_centre), strict=True)
    vmax = float(np.percentile(native[mask], 99)) if mask.any() else float(native.max())
    for ax, (img, outline) in zip(axes[0], row1, strict=True):
        ax.imshow(img.T, origin="lower", cmap="gray", vmin=0, vmax=vmax)
        ax.contour(outline.T, levels=[0.5], colors="lime", linewidths=0.8)
    for ax, (img, tpl) in zip(axes[1], row2, strict=True):
        ax.imshow(img.T, origin="lower", cmap="gray", vmin=0, vmax=1)
        ax.contour(tpl.T, levels=[0.3, 0.6], colors=["red", "orange"], linewidths=0.6)
    for ax in axes.ravel():
        ax.set_axis_off()
    axes[0, 0].set_title("native + brain mask", color="white", loc="left")
    axes[1, 0].set_title("aligned + template contours", color="white", loc="left")
    fig.suptitle(title, color="white")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=80, facecolor="black", format="png")
    plt.close(fig)
    return Path(path)
