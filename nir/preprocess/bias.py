"""A fast bias-field correction: a smooth multiplicative field fitted to white-matter-like voxels.

The log intensities of the brighter half of the brain (mostly white matter in T1w) are smoothed by
normalised convolution on a coarse grid; the resulting smooth field is divided out.  It takes about
a second on a 1 mm brain, unlike full N4.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

COARSE_MM = 4.0
SIGMA_MM = 30.0


def correct_bias(data: np.ndarray, mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Divide ``data`` by a smooth field estimated inside ``mask``; voxel size ``spacing`` mm."""
    if not mask.any():
        return data
    bright = mask & (data > np.median(data[mask])) & (data > 0)
    if bright.sum() < 100:
        return data
    factor = np.maximum(1, np.round(COARSE_MM / np.asarray(spacing)).astype(int))
    log = np.zeros(data.shape, np.float32)
    log[bright] = np.log(data[bright])
    coarse_log = _block_mean(log, factor)
    coarse_w = _block_mean(bright.astype(np.float32), factor)
    sigma = SIGMA_MM / (np.asarray(spacing) * factor)
    num = ndi.gaussian_filter(coarse_log, sigma, mode="nearest")
    den = ndi.gaussian_filter(coarse_w, sigma, mode="nearest")
    field = np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0.0)
    field -= np.average(field, weights=coarse_w) if coarse_w.sum() > 0 else 0.0
    zoom = np.array(data.shape) / np.array(field.shape)
    full = ndi.zoom(field, zoom, order=1, mode="nearest")
    return (data * np.exp(-full)).astype(np.float32)


def _block_mean(arr: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Average over non-overlapping blocks of size ``factor`` (edges padded by repetition)."""
    pad = [(0, (-n) % f) for n, f in zip(arr.shape, factor, strict=True)]
    padded = np.pad(arr, pad, mode="edge")
    shape = []
    for n, f in zip(padded.shape, factor, strict=True):
        shape += [n // f, f]
    return padded.reshape(shape).mean(axis=(1, 3, 5))
