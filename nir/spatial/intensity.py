"""Robust intensity scaling by percentiles, shared by preprocessing, the engine and QC."""

from __future__ import annotations

import numpy as np


def percentile_scale(data: np.ndarray, mask: np.ndarray, high: float, low: float | None = None,
                     ceiling: float = 1.0) -> np.ndarray:
    """Map the ``low`` percentile (default: intensity 0) and the ``high`` percentile of
    ``data[mask]`` to 0 and 1, and clip to [0, ``ceiling``]; float32.

    An empty mask uses the largest absolute value as the top instead.
    """
    values = data[mask]
    if values.size:
        points = [high] if low is None else [low, high]
        found = np.percentile(values, points)
        bottom, top = (0.0, found[0]) if low is None else (found[0], found[1])
    else:
        bottom, top = 0.0, float(np.abs(data).max())
    scaled = np.subtract(data, np.float32(bottom), dtype=np.float32)
    scaled *= np.float32(1.0 / max(float(top - bottom), 1e-6))
    return np.clip(scaled, 0.0, ceiling, out=scaled)
