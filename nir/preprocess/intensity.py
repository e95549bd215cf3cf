"""Robust intensity normalisation to [0, 1]."""

from __future__ import annotations

import numpy as np


def normalise_percentiles(data: np.ndarray, mask: np.ndarray, low: float = 1.0,
                          high: float = 99.0) -> np.ndarray:
    """Map the ``low``/``high`` percentiles inside ``mask`` to 0/1, clip, and zero outside."""
    lo, hi = np.percentile(data[mask], [low, high])
    scaled = (data - lo) / max(float(hi - lo), 1e-6)
    return (np.clip(scaled, 0.0, 1.0) * mask).astype(np.float32)
