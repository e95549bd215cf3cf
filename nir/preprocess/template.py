"""The registration template (MNI152 2009c sym, shipped with nilearn) and the common grid."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from nir.preprocess.intensity import normalise_percentiles

TEMPLATES = {"mni152": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"}
DEFAULT_GRID_SHAPE = (160, 192, 224)


@dataclass(frozen=True)
class Template:
    """Template T1 normalised to [0, 1] (zero outside the brain), its brain mask and affine."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    affine: np.ndarray


@lru_cache(maxsize=2)
def load_template(name: str = "mni152") -> Template:
    """Load a named template from the files nilearn installs (no download)."""
    import nilearn

    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}; choose from {sorted(TEMPLATES)}")
    path = Path(nilearn.__file__).parent / "datasets" / "data" / TEMPLATES[name]
    img = nib.as_closest_canonical(nib.load(str(path)))
    data = img.get_fdata(dtype=np.float32)
    mask = data > 0
    return Template(name, normalise_percentiles(data, mask), mask, img.affine.astype(np.float64))


def common_grid(template: Template, shape: tuple[int, int, int] = DEFAULT_GRID_SHAPE,
                spacing: float = 1.0) -> np.ndarray:
    """RAS affine of an axis-aligned grid of ``shape`` voxels centred on the template brain."""
    ijk = np.argwhere(template.mask)
    centre_vox = (ijk.min(axis=0) + ijk.max(axis=0)) / 2.0
    centre = (template.affine @ np.append(centre_vox, 1.0))[:3]
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = centre - spacing * (np.asarray(shape) - 1) / 2.0
    return affine
