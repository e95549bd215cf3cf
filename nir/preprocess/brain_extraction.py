"""Brain masks from T1w images: deepbet (TorchScript weights shipped in its wheel) or the
nonzero region of an already skull-stripped image.

deepbet's mask hugs the brain surface; FreeSurfer-style masks also hold the surrounding CSF and
the tissue in the deep folds between the lobes, so the raw mask is dilated by 2 mm, grown by up to
2 mm more through dark (CSF-like) voxels, and closed with an 8 mm ball.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from scipy import ndimage as ndi

METHODS = ("auto", "deepbet", "none")
DEEPBET_THRESHOLD = 0.5
DILATE_MM = 2.0
CSF_GROW_MM = 2.0
CSF_FRACTION = 0.7
CLOSE_MM = 8.0
MAX_STRIPPED_ML = 2500.0


def brain_mask(data: np.ndarray, spacing: np.ndarray, method: str = "auto",
               device: str = "cpu") -> tuple[np.ndarray, str]:
    """Boolean brain mask of a canonical (RAS) T1w array and the method actually used.

    ``auto`` treats an image whose filled foreground is smaller than a head (< 2.5 l) as
    skull-stripped and uses its nonzero region; otherwise it runs deepbet.
    """
    if method not in METHODS:
        raise ValueError(f"unknown skull-strip method {method!r}")
    foreground = _foreground(data)
    if method == "none":
        return foreground, "none"
    if method == "auto" and foreground.sum() * float(np.prod(spacing)) / 1000 < MAX_STRIPPED_ML:
        return foreground, "none"
    return _deepbet_mask(data, spacing, device), "deepbet"


def _foreground(data: np.ndarray) -> np.ndarray:
    """Largest connected nonzero region with holes filled."""
    mask = _largest_component(data > 0)
    return ndi.binary_fill_holes(mask)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


@lru_cache(maxsize=2)
def _deepbet_model(device: str):  # -> deepbet.BrainExtraction
    from deepbet import BrainExtraction

    return BrainExtraction(no_gpu=device == "cpu")


def _deepbet_mask(data: np.ndarray, spacing: np.ndarray, device: str) -> np.ndarray:
    """deepbet probability > 0.5, largest component, holes filled, grown to include CSF, closed."""
    with torch.inference_mode():
        prob = _deepbet_model(device).run_model(np.ascontiguousarray(data, dtype=np.float32))
    core = ndi.binary_fill_holes(_largest_component(prob > DEEPBET_THRESHOLD))
    if not core.any():
        return core
    step = float(np.min(spacing))
    mask = ndi.binary_dilation(core, iterations=max(1, round(DILATE_MM / step)))
    dark = data < CSF_FRACTION * np.median(data[core])
    mask = ndi.binary_dilation(mask, iterations=max(1, round(CSF_GROW_MM / step)),
                               mask=dark | mask)
    return ndi.binary_fill_holes(close_with_ball(mask, spacing, CLOSE_MM))


def close_with_ball(mask: np.ndarray, spacing: np.ndarray, radius_mm: float) -> np.ndarray:
    """Morphological closing with a ball of ``radius_mm`` in world millimetres.

    Dilation and erosion are thresholded Euclidean distance transforms, so the ball honours
    anisotropic voxels and costs the same at any radius. The result always contains ``mask``.
    """
    spacing = np.asarray(spacing, dtype=float)
    pad = math.ceil(radius_mm / float(spacing.min())) + 1
    padded = np.pad(mask.astype(bool), pad)
    grown = ndi.distance_transform_edt(~padded, sampling=spacing) <= radius_mm
    closed = ndi.distance_transform_edt(grown, sampling=spacing) > radius_mm
    return closed[(slice(pad, -pad),) * 3] | mask
