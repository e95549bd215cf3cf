"""On a real aligned pair (2 mm for CI time) mean aseg Dice rises by at least 0.10."""

from __future__ import annotations

import numpy as np
import torch

from nir.io import Volume, load_labels, load_volume
from nir.params import load_params
from nir.register import register
from nir.warp import moving_coordinates, warp_labels

STRUCTURES = (2, 3, 4, 7, 8, 10, 11, 12, 13, 16, 17, 18, 28, 41, 42, 43, 46, 47, 49, 50, 51,
              52, 53, 54, 60)


def _mean_dice(a: torch.Tensor, b: torch.Tensor) -> float:
    scores = []
    for label in STRUCTURES:
        x, y = a == label, b == label
        total = int(x.sum() + y.sum())
        if total:
            scores.append(2.0 * int((x & y).sum()) / total)
    return float(np.mean(scores))


def _at_2mm(image: Volume, labels: Volume) -> tuple[Volume, torch.Tensor]:
    data = torch.nn.functional.avg_pool3d(image.data[None, None], 2)[0, 0]
    affine = image.affine.copy()
    affine[:3, :3] *= 2
    affine[:3, 3] += image.affine[:3, :3] @ np.full(3, 0.5)
    return Volume(data, affine, image.header), labels.data[1::2, 1::2, 1::2]


def test_real_pair_dice_rises(real_cohort) -> None:
    root = real_cohort / "derivatives" / "aligned160"
    path = lambda s, d: root / s / "anat" / f"{s}_space-MNI305_desc-{d}.nii.gz"  # noqa: E731
    fixed, fixed_labels = _at_2mm(load_volume(path("sub-01", "brain_T1w")),
                                  load_labels(path("sub-01", "aseg_dseg")))
    moving, moving_labels = _at_2mm(load_volume(path("sub-02", "brain_T1w")),
                                    load_labels(path("sub-02", "aseg_dseg")))
    params = load_params(coarse_iterations=150, iterations=150, downsize_spacing_mm=4.0,
                         patches=6, patch_size=16, inference_stride=1)
    result = register(fixed, moving, params, seed=0, progress=False)
    coords = moving_coordinates(result.displacement, fixed.affine, moving.shape, moving.affine)
    before = _mean_dice(moving_labels, fixed_labels)
    after = _mean_dice(warp_labels(moving_labels, coords), fixed_labels)
    assert after - before >= 0.10, f"Dice {before:.3f} -> {after:.3f}"
