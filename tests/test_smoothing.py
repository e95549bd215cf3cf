"""The separable Gaussian blur equals scipy's reference filter, per axis and at the borders."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from nir.spatial.smoothing import gaussian_blur


def test_blur_matches_scipy_with_one_sigma_per_axis_and_replicated_borders() -> None:
    volume = torch.rand(2, 30, 25, 20, generator=torch.Generator().manual_seed(0))
    blurred = gaussian_blur(volume, [2.0, 0.0, 1.3]).numpy()
    reference = gaussian_filter(volume.numpy(), [0.0, 2.0, 0.0, 1.3], mode="nearest",
                                truncate=3.0)
    assert np.abs(blurred - reference).max() < 1e-5
    single = gaussian_blur(volume[0], 1.5).numpy()
    assert np.abs(single - gaussian_filter(volume[0].numpy(), 1.5, mode="nearest",
                                           truncate=3.0)).max() < 1e-5
    assert gaussian_blur(volume, 0.0) is volume
