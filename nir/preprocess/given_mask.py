"""A brain mask given with the T1w (sheet column ``brainmask``, ``nir preprocess --brainmask``).

It replaces brain extraction. Its nonzero voxels are the brain. It must be in the T1w's world
space; on another voxel grid of that space it is resampled onto the T1w's grid (trilinear weight
of the mask > 0.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nir.errors import NirInputError
from nir.preprocess.resample import resample_image
from nir.spatial.io import Volume, load_volume, same_grid

MIN_INSIDE_FRACTION = 0.9  # of the mask's volume that must fall within the T1w's field of view


def _voxel_ml(volume: Volume) -> float:
    return float(abs(np.linalg.det(volume.affine[:3, :3]))) / 1000.0


def load_given_mask(path: str | Path, t1w: Volume, device: str = "cpu") -> np.ndarray:
    """Boolean brain mask from ``path`` on the voxel grid of ``t1w``.

    Raises NirInputError naming ``path`` when the file is unreadable, not 3D or empty, when less
    than 90 % of it lies within the T1w's field of view, or when the T1w is not brighter inside
    it than outside (a mask of another image or space).
    """
    given = load_volume(path)  # unreadable, not 3D, NaN/Inf or all zero: one error naming it
    inside = given.data.numpy() > 0
    if not inside.any():
        raise NirInputError(path, "brain mask has no voxel > 0 (empty)")
    if same_grid(given.shape, given.affine, t1w.shape, t1w.affine):
        mask = inside
    else:
        mask = resample_image(inside.astype(np.float32), given.affine, np.eye(4), t1w.shape,
                              t1w.affine, device) > 0.5
        kept = mask.sum() * _voxel_ml(t1w) / (inside.sum() * _voxel_ml(given))
        if kept < MIN_INSIDE_FRACTION:
            raise NirInputError(path, f"only {kept:.0%} of the brain mask lies within the field "
                                      f"of view of the T1w {t1w.path}: it is not in the T1w's "
                                      "space")
    image = t1w.data.numpy()
    if (~mask).any() and image[mask].mean() <= image[~mask].mean():
        raise NirInputError(path, f"the T1w {t1w.path} is darker inside the brain mask than "
                                  "outside it: the mask does not outline this T1w's brain")
    return mask
