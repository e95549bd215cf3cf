"""Displacement fields on disk, in the ITK/ANTs convention.

A warp file is a NIfTI of shape (I, J, K, 1, 3), intent ``vector``, on the fixed (reference)
grid and with the fixed image's header.  Voxel (i, j, k) holds the displacement d, in
millimetres and in ITK's LPS physical frame, such that the fixed-space point x (LPS) maps to
the moving-space point x + d.  This is what ``antsApplyTransforms -t PREFIX_warp.nii.gz``
expects.  NIfTI affines are RAS, so d_LPS = diag(-1, -1, 1) d_RAS.

Storage (``dtype`` of :func:`save_warp`): ``float32`` is exact.  NIfTI-1 has no float16 type,
so the 16-bit storage is ``int16``: integers times one ``scl_slope`` step of max|d| / 32767
mm, which nibabel (so ``nir apply`` and ``nir jacobian``) reads as mm.  It rounds each
component by at most half a step (0.0005 mm for fields up to 32 mm) and gzips to about half
the size.  ITK before its fix of multi-component ``scl_slope`` reads (ITK issue #6575, B48),
for example antspyx 0.6.3, cannot read it: give ANTs the ``float32`` file.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from nir.errors import NirInputError
from nir.spatial.io import save_volume

RAS_TO_LPS = torch.tensor([-1.0, -1.0, 1.0])
WARP_DTYPES = ("float32", "int16")
INT16_MAX = 32767


def int16_step(displacement: torch.Tensor) -> float:
    """The ``int16`` storage step, mm: max(max |d|, 1 mm) / 32767, as the float32 NIfTI
    ``scl_slope`` will hold it."""
    return float(np.float32(max(float(displacement.abs().max()), 1.0) / INT16_MAX))


def save_warp(displacement_ras: torch.Tensor, affine: np.ndarray, path: str | Path,
              header: nib.nifti1.Nifti1Header | None = None, dtype: str = "float32",
              atomic: bool = True) -> Path:
    """Write a (I, J, K, 3) RAS-mm displacement as an ITK/ANTs LPS vector NIfTI, atomically.

    ``dtype`` is one of :data:`WARP_DTYPES` (see the module docstring for ``int16``);
    ``atomic=False`` writes ``path`` in place (a temporary file already).
    """
    if dtype not in WARP_DTYPES:
        raise ValueError(f"warp dtype must be one of {WARP_DTYPES}, got {dtype!r}")
    lps = (displacement_ras.detach().cpu().float() * RAS_TO_LPS)[:, :, :, None, :]
    if dtype == "int16":
        step = int16_step(lps)
        data = torch.round(lps / step).numpy().astype(np.int16)
        return save_volume(data, affine, path, header=header, dtype=np.int16, intent="vector",
                           slope=step, atomic=atomic)
    return save_volume(lps.numpy().astype(np.float32), affine, path, header=header,
                       intent="vector", atomic=atomic)


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
