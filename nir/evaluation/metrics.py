"""Registration quality metrics: Dice, HD95 and Jacobian-based regularity, honouring voxel spacing.

Conventions
-----------
* Dice of a label absent from both maps is NaN (nothing to overlap); means ignore NaN.
* HD95 is NaN when both masks are empty and ``inf`` when exactly one is empty (no surface to
  reach); :func:`mean_finite` averages only the finite values.
* SDlogJ clips det J to at least ``LOGJ_CLIP`` before the log, so folded voxels (det J <= 0)
  contribute ``log(1e-9)`` ~ -20.7 instead of NaN: folding inflates SDlogJ instead of being
  dropped.  The standard deviation is the population one (ddof=0).
* Folding % and SDlogJ are counted in the brain: the fixed label map > 0 (:func:`brain_mask`),
  as registration papers report them and as ``nir evaluate`` and the ``nir register`` summary
  (given ``--fixed-labels``) both count them.  Without fixed labels, the summary falls back
  to the skull-stripped fixed image > 0 and says so (``folding_region``).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from nir.spatial.jacobian import jacobian_determinant_map
from nir.spatial.overlap import as_numpy, masked_values

LOGJ_CLIP = 1e-9
HD_PERCENTILE = 95.0
NEAR_RADIUS_STEPS = 3  # HD95 checks offsets up to this many finest voxel steps before a k-d tree


@dataclass(frozen=True, eq=False)
class LabelSurfaces:
    """The surface voxels of every label of a label map, grouped by label.

    A voxel is on the surface of its label when a face neighbour holds another label or lies
    outside the volume (the image border counts as outside).  Every label present in the map
    has at least one surface voxel.
    """

    shape: tuple[int, ...]
    labels: np.ndarray  # label of each surface voxel, ascending
    voxels: np.ndarray  # flat (C-order) index of each surface voxel, in the order of ``labels``

    def present(self) -> np.ndarray:
        """The labels that occur in the map, ascending."""
        if not self.labels.size:
            return self.labels
        return self.labels[np.r_[True, self.labels[1:] != self.labels[:-1]]]

    def points(self, label: int) -> np.ndarray:
        """Voxel indices (n, ndim) of the surface voxels of ``label``."""
        start, stop = (int(np.searchsorted(self.labels, label, side=side))
                       for side in ("left", "right"))
        return np.stack(np.unravel_index(self.voxels[start:stop], self.shape), axis=-1)


def _boundary(label_map: np.ndarray) -> np.ndarray:
    """True where a face neighbour holds another label or lies outside the volume."""
    boundary = np.ones(label_map.shape, dtype=bool)
    boundary[(slice(1, -1),) * label_map.ndim] = False
    for axis in range(label_map.ndim):
        head = tuple(slice(None, -1) if d == axis else slice(None) for d in range(label_map.ndim))
        tail = tuple(slice(1, None) if d == axis else slice(None) for d in range(label_map.ndim))
        differs = label_map[head] != label_map[tail]
        boundary[head] |= differs
        boundary[tail] |= differs
    return boundary


def label_surfaces(label_map: np.ndarray | torch.Tensor) -> LabelSurfaces:
    """:class:`LabelSurfaces` of an integer label map, for all its labels at once."""
    label_map = as_numpy(label_map)
    voxels = np.flatnonzero(_boundary(label_map))
    labels = label_map.ravel()[voxels].astype(np.int64, copy=False)
    order = np.argsort(labels, kind="stable")
    return LabelSurfaces(label_map.shape, labels[order], voxels[order])


def _lengths(steps: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Length (mm) of voxel steps (n, ndim), summed axis by axis like scipy's EDT."""
    return np.sqrt(np.add.reduce((steps * spacing) ** 2, axis=-1))


@functools.lru_cache(maxsize=8)
def _near_offsets(spacing: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Every voxel offset within NEAR_RADIUS_STEPS finest steps, shortest first, and lengths."""
    radius = NEAR_RADIUS_STEPS * min(spacing)
    ranges = [range(-math.ceil(radius / s), math.ceil(radius / s) + 1) for s in spacing]
    offsets = np.array(list(itertools.product(*ranges)), dtype=np.int64)
    lengths = _lengths(offsets, np.asarray(spacing))
    order = np.argsort(lengths, kind="stable")
    keep = order[lengths[order] <= radius]
    offsets, lengths = offsets[keep], lengths[keep]
    offsets.flags.writeable = lengths.flags.writeable = False  # shared by the cache
    return offsets, lengths


def _near_distances(src: np.ndarray, dst: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distance (mm) from each voxel of ``src`` (n, ndim) to the nearest voxel of ``dst`` where
    that lies within :data:`NEAR_RADIUS_STEPS` finest steps, inf where it lies farther.

    Every offset within that radius is tried, shortest first, on a boolean grid of ``dst``: the
    first hit is the nearest voxel.
    """
    offsets, lengths = _near_offsets(spacing)
    reach = np.abs(offsets).max(axis=0)
    origin = np.minimum(src.min(axis=0), dst.min(axis=0)) - reach
    dims = tuple(int(n) for n in np.maximum(src.max(axis=0), dst.max(axis=0)) + reach + 1 - origin)
    grid = np.zeros(dims, dtype=bool)
    grid[tuple((dst - origin).T)] = True
    grid = grid.ravel()
    strides = np.cumprod((1, *dims[:0:-1]))[::-1]
    flat = (src - origin) @ strides
    distances = np.full(len(src), np.inf)
    todo = np.arange(len(src))
    for step, length in zip(offsets @ strides, lengths, strict=True):
        hit = grid[flat + step]
        distances[todo[hit]] = length
        todo, flat = todo[~hit], flat[~hit]
        if not todo.size:
            break
    return distances


def _fill_far(distances: np.ndarray, src: np.ndarray, dst: np.ndarray,
              spacing: tuple[float, ...]) -> None:
    """Replace the inf entries of :func:`_near_distances` by the exact distance from ``src`` to
    the nearest ``dst`` voxel, found with a k-d tree."""
    far = np.flatnonzero(np.isinf(distances))
    if far.size:
        scale = np.asarray(spacing)
        tree = cKDTree(dst * scale, balanced_tree=False, compact_nodes=False)  # quicker to build
        nearest = tree.query(src[far] * scale)[1]
        distances[far] = _lengths(dst[nearest] - src[far], scale)


def _hd95_points(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    """:func:`hd95` from the surface voxels (n, ndim) of the two masks."""
    if not (len(a) or len(b)):
        return float("nan")
    if not (len(a) and len(b)):
        return float("inf")
    to_b, to_a = _near_distances(a, b, spacing), _near_distances(b, a, spacing)
    # The percentile interpolates two neighbouring order statistics.  Far distances exceed every
    # near one, so if near ones fill every rank up to one past the percentile's (plus one for
    # rounding), the far ones are never read and need no exact value.
    last_rank = math.ceil((len(to_b) + len(to_a) - 1) * HD_PERCENTILE / 100) + 1
    if np.isfinite(to_b).sum() + np.isfinite(to_a).sum() <= last_rank:
        _fill_far(to_b, a, b, spacing)
        _fill_far(to_a, b, a, spacing)
    return float(np.percentile(np.concatenate([to_b, to_a]), HD_PERCENTILE))


def _spacing(spacing_mm: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(s) for s in spacing_mm)


def hd95(a_mask: np.ndarray | torch.Tensor, b_mask: np.ndarray | torch.Tensor,
         spacing_mm: Sequence[float]) -> float:
    """95th percentile of the symmetric surface distances (mm) between two binary masks.

    Distances from every surface voxel of A to the nearest surface voxel of B and vice versa are
    pooled before taking the percentile.  NaN if both masks are empty, inf if exactly one is.
    Exact: nearby surface voxels are found by a shortest-first offset search, farther ones
    with a k-d tree, and only when the percentile depends on them.
    """
    a, b = as_numpy(a_mask).astype(bool), as_numpy(b_mask).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    return _hd95_points(label_surfaces(a).points(1), label_surfaces(b).points(1),
                        _spacing(spacing_mm))


def hd95_per_label(a: np.ndarray | torch.Tensor | LabelSurfaces,
                   b: np.ndarray | torch.Tensor | LabelSurfaces, labels: Iterable[int],
                   spacing_mm: Sequence[float]) -> dict[int, float]:
    """:func:`hd95` of every label between two label maps.

    Either map may be given as its :func:`label_surfaces`, to reuse them across calls.
    """
    a, b = (m if isinstance(m, LabelSurfaces) else label_surfaces(m) for m in (a, b))
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    spacing = _spacing(spacing_mm)
    return {int(label): _hd95_points(a.points(int(label)), b.points(int(label)), spacing)
            for label in labels}


def jacobian_determinant(disp_vox: np.ndarray | torch.Tensor) -> np.ndarray:
    """det J of x -> x + u(x) for a displacement ``u`` of shape (I, J, K, 3) in voxel units.

    Component ``u[..., c]`` is the displacement along voxel axis c; central differences,
    one-sided at the border (:func:`nir.spatial.jacobian.jacobian_determinant_map` on a unit grid).
    """
    u = torch.as_tensor(as_numpy(disp_vox), dtype=torch.float64)
    if u.ndim != 4 or u.shape[-1] != 3:
        raise ValueError(f"expected a displacement of shape (I, J, K, 3), got {tuple(u.shape)}")
    return jacobian_determinant_map(u, np.eye(4)).numpy()


def sdlogj(detj: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None = None) -> float:
    """Population std of log(max(det J, 1e-9)) over the (mask) voxels; NaN for an empty mask."""
    values = masked_values(detj, mask)
    if not values.size:
        return float("nan")
    return float(np.log(np.clip(values, LOGJ_CLIP, None)).std())
