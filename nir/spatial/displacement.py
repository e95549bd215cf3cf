"""Displacement fields on disk, in the ITK/ANTs convention.

A warp file is a NIfTI of shape (I, J, K, 1, 3), intent ``vector``, on the fixed (reference)
grid and with the fixed image's header.  Voxel (i, j, k) holds the displacement d, in
millimetres and in ITK's LPS physical frame, such that the fixed-space point x (LPS) maps to
the moving-space point x + d.  This is what ``antsApplyTransforms -t PREFIX_warp.nii.gz``
expects.  NIfTI affines are RAS, so d_LPS = diag(-1, -1, 1) d_RAS.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from nir.errors import NirInputError
from nir.spatial.io import save_volume

RAS_TO_LPS = torch.tensor([-1.0, -1.0, 1.0])


def save_warp(displacement_ras: torch.Tensor, affine: np.ndarray, path: str | Path,
              header: nib.nifti1.Nifti1Header | None = None) -> Path:
    """Write a (I, J, K, 3) RAS-mm displacement as an ITK/ANTs LPS vector NIfTI, atomically."""
    lps = (displacement_ras.detach().cpu().float() * RAS_TO_LPS).numpy()
    data = lps[:, :, :, None, :].astype(np.float32)
    return save_volume(data, affine, path, header=header, intent="vector")


def load_warp(path: str | Path) -> tuple[torch.Tensor, np.ndarray, nib.nifti1.Nifti1Header]:
    """Read an ITK/ANTs warp; returns the RAS-mm displacement (I, J, K, 3), affine, header."""
    path = Path(path)
    if not path.exists():
        raise NirInputError(path, "warp file does not exist")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:
        raise NirInputError(path, f"unreadable as a NIfTI warp ({type(exc).__name__})") from exc
    if data.ndim == 5 and data.shape[3] == 1 and data.shape[4] == 3:
        data = data[:, :, :, 0, :]
    elif not (data.ndim == 4 and data.shape[3] == 3):
        raise NirInputError(path, f"expected a displacement field of shape (I, J, K, 1, 3), "
                                  f"got {data.shape}")
    if not np.isfinite(data).all():
        raise NirInputError(path, "warp contains NaN/Inf")
    ras = torch.from_numpy(np.ascontiguousarray(data)) * RAS_TO_LPS
    return ras, img.affine.astype(np.float64), img.header
