"""Text files for the native-to-template affine: a commented 4x4 RAS matrix and an ITK transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nir.spatial.io import atomic_write

AFFINE_HEADER = """\
# nir preprocess affine (4x4, world mm, RAS+ / NIfTI scanner coordinates)
# Convention: maps a TEMPLATE-space world point (the common grid) to the NATIVE world point
#   [x_native, y_native, z_native, 1]^T = M @ [x_template, y_template, z_template, 1]^T
# i.e. the pull-back used to resample the native image into template space (same direction as
# an ITK/ANTs transform with the template as fixed image). Invert M to map native -> template.
"""
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_affine_text(matrix: np.ndarray, path: str | Path) -> Path:
    """Write ``matrix`` (template world -> native world, RAS) with its convention as comments."""
    with atomic_write(path) as tmp, open(tmp, "w") as fh:
        fh.write(AFFINE_HEADER)
        np.savetxt(fh, matrix, fmt="%.10f")
    return Path(path)


def read_affine_text(path: str | Path) -> np.ndarray:
    """Read a matrix written by :func:`write_affine_text`."""
    return np.loadtxt(path, comments="#").reshape(4, 4)


def write_itk_affine(matrix: np.ndarray, path: str | Path) -> Path:
    """Write ``matrix`` as an ITK ``AffineTransform_double_3_3`` in LPS (fixed = template)."""
    lps = _LPS @ matrix @ _LPS
    params = [*lps[:3, :3].ravel(), *lps[:3, 3]]
    text = ("#Insight Transform File V1.0\n#Transform 0\n"
            "Transform: AffineTransform_double_3_3\n"
            f"Parameters: {' '.join(f'{p:.10g}' for p in params)}\n"
            "FixedParameters: 0 0 0\n")
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)
