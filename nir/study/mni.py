"""Where a study template lies in MNI space: an affine registration of the template to the
MNI152 2009 template that ships with nilearn (the one ``nir preprocess`` aligns every subject to).

With preprocessing, the template is built on the MNI152 grid from affinely aligned subjects, so
this affine is close to the identity; with ``preprocessed: true`` the template lives in the
frame of the given images (e.g. FreeSurfer's MNI305 talairach space), which the affine maps to
MNI152. Either way, peak coordinates carried through it are MNI coordinates up to the nonlinear
difference between the study template and MNI152, as for any study-specific template.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nir.preprocess.affine import register_affine
from nir.preprocess.template import load_template
from nir.spatial.intensity import percentile_scale
from nir.spatial.io import load_volume, write_text


def template_to_mni(template: str | Path, seed: int = 0) -> tuple[np.ndarray, float]:
    """(4x4 template world mm -> MNI152 world mm, the registration's NCC in the MNI brain)."""
    mni = load_template("mni152")
    volume = load_volume(template)
    image = volume.data.numpy().astype(np.float32)
    foreground = image > 0
    scaled = percentile_scale(image, foreground, high=99.0, low=1.0) * foreground
    result = register_affine(mni.image, mni.affine, mni.mask, scaled, volume.affine,
                             device="cpu", seed=seed)
    return np.linalg.inv(result.matrix), result.ncc


def write_mni_transform(template: str | Path, out: str | Path, seed: int = 0) -> np.ndarray:
    """Write :func:`template_to_mni` of ``template`` as JSON; return the matrix."""
    matrix, ncc = template_to_mni(template, seed)
    record = {"template_to_mni": np.round(matrix, 8).tolist(), "ncc": round(ncc, 5),
              "method": "12-parameter affine (nir.preprocess.affine) of the template onto "
                        "nilearn's MNI152 2009 T1, NCC in the MNI brain mask",
              "template": str(template)}
    write_text(json.dumps(record, indent=1), out)
    return matrix


def read_mni_transform(path: str | Path) -> np.ndarray:
    """The matrix written by :func:`write_mni_transform`."""
    return np.asarray(json.loads(Path(path).read_text())["template_to_mni"], dtype=np.float64)
