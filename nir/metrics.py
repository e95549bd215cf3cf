"""Registration quality metrics: Dice, HD95 and Jacobian-based regularity, honouring voxel spacing.

Conventions
-----------
* Dice of a label absent from both maps is NaN (nothing to overlap); means ignore NaN.
* HD95 is NaN when both masks are empty and ``inf`` when exactly one is empty (no surface to
  reach); :func:`mean_finite` averages only the finite values.
* SDlogJ clips det J to at least ``LOGJ_CLIP`` before the log, so folded voxels (det J <= 0)
  contribute ``log(1e-9)`` ~ -20.7 instead of NaN: folding inflates SDlogJ instead of being
  dropped.  The standard deviation is the population one (ddof=0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from scipy import ndimage

from nir.jacobian import jacobian_determinant_map

LOGJ_CLIP = 1e-9
HD_PERCENTILE = 95.0


def _numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _label_boxes(a: np.ndarray, b: np.ndarray,
                 labels: Iterable[int]) -> dict[int, tuple[slice, ...] | None]:
    """Bounding box of every label over both maps (None when absent from both); a label <= 0
    gets the whole volume."""
    objects = [ndimage.find_objects(np.clip(m, 0, None)) for m in (a, b)]
    whole = tuple(slice(0, n) for n in a.shape)
    boxes: dict[int, tuple[slice, ...] | None] = {}
    for label in labels:
        label = int(label)
        if label <= 0:
            boxes[label] = whole
            continue
        found = [obj[label - 1] for obj in objects if label <= len(obj) and obj[label - 1]]
        boxes[label] = None if not found else tuple(
            slice(min(f[d].start for f in found), max(f[d].stop for f in found))
            for d in range(a.ndim))
    return boxes


def _pair(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> tuple[np.ndarray, ...]:
    a, b = _numpy(a), _numpy(b)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    return a.astype(np.int64, copy=False), b.astype(np.int64, copy=False)


def dice_per_label(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor,
                   labels: Iterable[int]) -> dict[int, float]:
    """Dice 2|A∩B|/(|A|+|B|) of every label between two label maps of equal shape."""
    a, b = _pair(a, b)
    scores = {}
    for label, box in _label_boxes(a, b, labels).items():
        if box is None:
            scores[label] = float("nan")
            continue
        in_a, in_b = a[box] == label, b[box] == label
        scores[label] = 2.0 * int((in_a & in_b).sum()) / (int(in_a.sum()) + int(in_b.sum()))
    return scores


def mean_finite(values: Iterable[float]) -> float:
    """Mean of the finite values (NaN when there is none)."""
    arr = np.asarray(list(values), dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def mean_dice(scores: dict[int, float]) -> float:
    """Mean Dice over labels, ignoring labels absent from both maps (NaN)."""
    return mean_finite(scores.values())


def _surface(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with a face neighbour outside the mask (the image border counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(a_mask: np.ndarray | torch.Tensor, b_mask: np.ndarray | torch.Tensor,
         spacing_mm: Sequence[float]) -> float:
    """95th percentile of the symmetric surface distances (mm) between two binary masks.

    Distances from every surface voxel of A to the nearest surface voxel of B and vice versa are
    pooled before taking the percentile.  NaN if both masks are empty, inf if exactly one is.
    """
    a, b = _numpy(a_mask).astype(bool), _numpy(b_mask).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    has_a, has_b = bool(a.any()), bool(b.any())
    if not (has_a or has_b):
        return float("nan")
    if not (has_a and has_b):
        return float("inf")
    # Crop to the union's bounding box plus a one-voxel zero border: every surface voxel of both
    # masks lies inside, so nearest-surface distances are unchanged and the EDT is much cheaper.
    idx = np.nonzero(a | b)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)
    a, b = np.pad(a[box], 1), np.pad(b[box], 1)
    surf_a, surf_b = _surface(a), _surface(b)
    spacing = tuple(float(s) for s in spacing_mm)
    to_b = ndimage.distance_transform_edt(~surf_b, sampling=spacing)[surf_a]
    to_a = ndimage.distance_transform_edt(~surf_a, sampling=spacing)[surf_b]
    return float(np.percentile(np.concatenate([to_b, to_a]), HD_PERCENTILE))


def hd95_per_label(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor,
                   labels: Iterable[int], spacing_mm: Sequence[float]) -> dict[int, float]:
    """:func:`hd95` of every label between two label maps."""
    a, b = _pair(a, b)
    return {label: float("nan") if box is None else hd95(a[box] == label, b[box] == label,
                                                           spacing_mm)
            for label, box in _label_boxes(a, b, labels).items()}


def jacobian_determinant(disp_vox: np.ndarray | torch.Tensor) -> np.ndarray:
    """det J of x -> x + u(x) for a displacement ``u`` of shape (I, J, K, 3) in voxel units.

    Component ``u[..., c]`` is the displacement along voxel axis c; central differences,
    one-sided at the border (:func:`nir.jacobian.jacobian_determinant_map` on a unit grid).
    """
    u = torch.as_tensor(_numpy(disp_vox), dtype=torch.float64)
    if u.ndim != 4 or u.shape[-1] != 3:
        raise ValueError(f"expected a displacement of shape (I, J, K, 3), got {tuple(u.shape)}")
    return jacobian_determinant_map(u, np.eye(4)).numpy()


def _masked(detj: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None) -> np.ndarray:
    detj = _numpy(detj).astype(np.float64)
    if mask is None:
        return detj.ravel()
    mask = _numpy(mask).astype(bool)
    if mask.shape != detj.shape:
        raise ValueError(f"mask shape {mask.shape} differs from det J shape {detj.shape}")
    return detj[mask]


def folding_percent(detj: np.ndarray | torch.Tensor,
                    mask: np.ndarray | torch.Tensor | None = None) -> float:
    """Percentage of (mask) voxels with det J <= 0; NaN for an empty mask."""
    values = _masked(detj, mask)
    return float(100.0 * (values <= 0).mean()) if values.size else float("nan")


def sdlogj(detj: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None = None) -> float:
    """Population std of log(max(det J, 1e-9)) over the (mask) voxels; NaN for an empty mask."""
    values = _masked(detj, mask)
    if not values.size:
        return float("nan")
    return float(np.log(np.clip(values, LOGJ_CLIP, None)).std())
