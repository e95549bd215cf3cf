"""The registration template (MNI152 2009c sym, shipped with nilearn) and the common grid.

:func:`mni152_file` is the one place that finds nilearn's MNI152 files; the synthetic demo
(:func:`nir.study.demo.demo_template`) builds its own template from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from nir.spatial.intensity import percentile_scale

TEMPLATES = ("mni152",)
MNI152_KINDS = ("t1", "gm", "wm")
MNI152_FILE = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
DEFAULT_GRID_SHAPE = (160, 192, 224)


@dataclass(frozen=True)
class Template:
    """Template T1 normalised to [0, 1] (zero outside the brain), its brain mask and affine."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    affine: np.ndarray


def mni152_file(kind: str = "t1") -> Path:
    """nilearn's bundled 1 mm MNI152 2009 map ``kind``: T1 (``t1``), grey or white matter
    probability (``gm``, ``wm``, 0-255). Installed with nilearn: no download."""
    import nilearn

    if kind not in MNI152_KINDS:
        raise ValueError(f"unknown MNI152 map {kind!r}; choose from {MNI152_KINDS}")
    return Path(nilearn.__file__).parent / "datasets" / "data" / MNI152_FILE.format(kind)


@lru_cache(maxsize=2)
def load_template(name: str = "mni152") -> Template:
    """The registration template ``name``: 1 mm T1 in [0, 1], its brain mask, RAS affine."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}; choose from {TEMPLATES}")
    img = nib.as_closest_canonical(nib.load(str(mni152_file("t1"))))
    data = img.get_fdata(dtype=np.float32)
    mask = data > 0
    scaled = percentile_scale(data, mask, high=99.0, low=1.0) * mask
    return Template(name, scaled, mask, img.affine.astype(np.float64))


def common_grid(template: Template, shape: tuple[int, int, int] = DEFAULT_GRID_SHAPE,
                spacing: float = 1.0) -> np.ndarray:
    """RAS affine of an axis-aligned grid of ``shape`` voxels centred on the template brain."""
    ijk = np.argwhere(template.mask)
    centre_vox = (ijk.min(axis=0) + ijk.max(axis=0)) / 2.0
    centre = (template.affine @ np.append(centre_vox, 1.0))[:3]
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = centre - spacing * (np.asarray(shape) - 1) / 2.0
    return affine
