"""A known, smooth local atrophy for the two-group demo: hippocampus labels and a sink flow.

The hippocampi are painted on the demo template as ellipsoids (FreeSurfer IDs 17 left, 53
right) at their MNI152 positions.  The atrophy of the left one is the flow ``f = exp(v)`` of a
stationary velocity whose divergence is a Gaussian bump, ``div v = -rate exp(-rho^2 / 2)``, with
``rho`` the ellipsoidal radius (1 on the painted ellipsoid).  Away from the bump ``v`` is
divergence-free, so the volume is lost in and around the hippocampus and nowhere gained (the
missing volume flows in from the image border as a slight inward shear); ``log det J_f`` is about
``-rate exp(-rho^2 / 2)``.  ``rate`` is chosen so that the ellipsoid loses the requested fraction
of its volume.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import integrate, optimize, special

from nir.spatial.geometry import voxel_sizes

HIPPOCAMPUS_CENTRES_MM = {17: (-26.0, -21.0, -14.0), 53: (27.0, -20.0, -14.0)}
HIPPOCAMPUS_SEMI_AXES_MM = (6.0, 16.0, 7.0)
ATROPHIED_LABEL = 17  # the left hippocampus


def _world(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World RAS mm of every voxel centre, shape (3, *shape)."""
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    return (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape(3, *shape)


def _scaled_offset(shape: tuple[int, ...], affine: np.ndarray, label: int) -> np.ndarray:
    """(x - centre) / semi-axes of every voxel for hippocampus ``label``: (3, *shape)."""
    centre = np.asarray(HIPPOCAMPUS_CENTRES_MM[label])[:, None, None, None]
    axes = np.asarray(HIPPOCAMPUS_SEMI_AXES_MM)[:, None, None, None]
    return (_world(shape, affine) - centre) / axes


def paint_hippocampi(labels: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``labels`` with both hippocampal ellipsoids painted inside the brain (labels > 0)."""
    out = labels.copy()
    for label in HIPPOCAMPUS_CENTRES_MM:
        inside = (_scaled_offset(labels.shape, affine, label) ** 2).sum(0) <= 1.0
        out[inside & (labels > 0)] = label
    return out


def _volume_ratio(rate: float) -> float:
    """Volume after / before of the unit ellipsoid under ``log det J = -rate exp(-rho^2/2)``."""
    value, _ = integrate.quad(lambda r: 3 * r * r * np.exp(-rate * np.exp(-r * r / 2)), 0, 1)
    return value


def sink_rate(volume_loss: float) -> float:
    """The ``rate`` that removes ``volume_loss`` (a fraction in (0, 1)) of the ellipsoid."""
    return optimize.brentq(lambda rate: _volume_ratio(rate) - (1.0 - volume_loss), 0.0, 20.0)


def sink_velocity(shape: tuple[int, ...], affine: np.ndarray, volume_loss: float,
                  label: int = ATROPHIED_LABEL) -> np.ndarray:
    """The shrinking velocity field (3, *shape) in voxel units of an axis-aligned grid.

    In ellipsoid coordinates ``u`` it points inward with speed ``rate M(rho) / rho^2``,
    ``M(rho) = sqrt(pi/2) erf(rho/sqrt 2) - rho exp(-rho^2/2)`` (so that ``rho^2`` times the speed
    grows like the integral of the Gaussian bump); stretching ``u`` back to mm keeps the
    divergence.
    """
    rate = sink_rate(volume_loss)
    u = _scaled_offset(shape, affine, label)
    rho = np.sqrt((u**2).sum(0))
    mass = np.sqrt(np.pi / 2) * special.erf(rho / np.sqrt(2)) - rho * np.exp(-(rho**2) / 2)
    safe = np.maximum(rho, 1e-6)
    speed_over_rho = np.where(rho > 1e-3, rate * mass / safe**3, rate / 3.0)
    axes = np.asarray(HIPPOCAMPUS_SEMI_AXES_MM)[:, None, None, None]
    velocity_mm = -speed_over_rho * u * axes
    spacing = voxel_sizes(affine)[:, None, None, None]
    return (velocity_mm / spacing).astype(np.float32)


def log_jacobian(displacement_vox: np.ndarray) -> np.ndarray:
    """log det J of ``x -> x + d(x)`` for a (3, *shape) voxel-unit displacement (central
    differences)."""
    grads = np.stack([np.stack(np.gradient(displacement_vox[c]), 0) for c in range(3)])
    jac = np.moveaxis(grads + np.eye(3)[:, :, None, None, None], (0, 1), (-2, -1))
    return np.log(np.clip(np.linalg.det(jac), 1e-6, None)).astype(np.float32)


def label_volume_ratio(labels: np.ndarray, label: int, displacement_vox: np.ndarray) -> float:
    """Volume of ``label`` after the push-forward ``x -> x + d(x)`` over its volume before."""
    inside = labels == label
    return float(np.exp(log_jacobian(displacement_vox)[inside]).sum() / inside.sum())


def region_in_world(truth: nib.Nifti1Image, shape: tuple[int, ...], affine: np.ndarray,
                    fraction: float = 0.5) -> np.ndarray:
    """Voxels of a grid (``shape``, ``affine``) where the true log det J of ``truth`` is at most
    ``fraction`` of its minimum (0.5: the half-maximum region of the simulated volume loss)."""
    from scipy import ndimage

    data = np.asarray(truth.dataobj, dtype=np.float32)
    vox = np.linalg.inv(truth.affine) @ np.vstack([_world(shape, affine).reshape(3, -1),
                                                   np.ones((1, int(np.prod(shape))))])
    values = ndimage.map_coordinates(data, vox[:3], order=1, cval=0.0).reshape(shape)
    return values <= fraction * float(data.min())
