"""Reorientation of voxel arrays to the closest canonical (RAS) axis order, keeping world points."""

from __future__ import annotations

import nibabel as nib
import numpy as np


def to_canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flip/permute ``data`` so its axes point R, A, S; returns (data, affine, orientation).

    The new affine maps every voxel to the same world point as before; ``orientation`` is the
    nibabel orientation array of the input, needed by :func:`from_canonical`.
    """
    ornt = nib.orientations.io_orientation(affine)
    canonical = nib.orientations.ornt_transform(ornt, nib.orientations.axcodes2ornt("RAS"))
    out = nib.orientations.apply_orientation(data, canonical)
    new_affine = affine @ nib.orientations.inv_ornt_aff(canonical, data.shape)
    return np.ascontiguousarray(out), new_affine, ornt


def from_canonical(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Put a canonical (RAS) array back into the voxel order described by ``ornt``."""
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"), ornt)
    return np.ascontiguousarray(nib.orientations.apply_orientation(data, back))
