"""Label overlap and folding counts: what the engine's convergence records and the evaluation
both measure, so that a record and ``nir evaluate`` count the same thing the same way.

Dice of a label absent from both maps is NaN; means ignore NaN.  Folding is counted in the
brain: the fixed label map > 0 (:func:`brain_mask`), or without labels the skull-stripped fixed
image > 0.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch


def as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """``x`` as a NumPy array (a tensor is detached and moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def label_pair(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor
               ) -> tuple[np.ndarray, ...]:
    """Two label maps of equal shape as int64 arrays; ValueError if the shapes differ."""
    a, b = as_numpy(a), as_numpy(b)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    return a.astype(np.int64, copy=False), b.astype(np.int64, copy=False)


def dice_per_label(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor,
                   labels: Iterable[int]) -> dict[int, float]:
    """Dice 2|A∩B|/(|A|+|B|) of every label between two label maps of equal shape.

    All labels are counted in one pass per map (``np.bincount``, so label values should be
    small integers, as in any segmentation).
    """
    a, b = label_pair(a, b)
    labels = [int(label) for label in labels]
    low = min(int(a.min()), int(b.min()), *labels)
    size = max(int(a.max()), int(b.max()), *labels) - low + 1

    def counts(values: np.ndarray) -> np.ndarray:
        return np.bincount((values - low if low else values).ravel(), minlength=size)

    count_a, count_b, count_both = counts(a), counts(b), counts(a[a == b])
    scores = {}
    for label in labels:
        total = int(count_a[label - low]) + int(count_b[label - low])
        scores[label] = 2.0 * int(count_both[label - low]) / total if total else float("nan")
    return scores


def mean_finite(values: Iterable[float]) -> float:
    """Mean of the finite values (NaN when there is none)."""
    arr = np.asarray(list(values), dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def mean_dice(scores: dict[int, float]) -> float:
    """Mean Dice over labels, ignoring labels absent from both maps (NaN)."""
    return mean_finite(scores.values())


def masked_values(detj: np.ndarray | torch.Tensor,
                  mask: np.ndarray | torch.Tensor | None) -> np.ndarray:
    """The det J values inside ``mask`` (all of them without one), as float64."""
    detj = as_numpy(detj)
    if mask is None:
        return detj.astype(np.float64).ravel()
    mask = as_numpy(mask).astype(bool, copy=False)
    if mask.shape != detj.shape:
        raise ValueError(f"mask shape {mask.shape} differs from det J shape {detj.shape}")
    return detj[mask].astype(np.float64)


BRAIN_FROM_LABELS = "fixed labels > 0"
BRAIN_FROM_IMAGE = "fixed image > 0"


def brain_mask(fixed_labels: np.ndarray | torch.Tensor | None,
               fixed_image: np.ndarray | torch.Tensor | None = None
               ) -> tuple[np.ndarray | torch.Tensor, str]:
    """The region folding % and SDlogJ are counted in, and its name.

    The brain is the fixed label map > 0; without labels, the (skull-stripped) fixed image > 0.
    """
    if fixed_labels is not None:
        return fixed_labels > 0, BRAIN_FROM_LABELS
    if fixed_image is None:
        raise ValueError("brain_mask needs the fixed labels or the fixed image")
    return fixed_image > 0, BRAIN_FROM_IMAGE


def folding_percent(detj: np.ndarray | torch.Tensor,
                    mask: np.ndarray | torch.Tensor | None = None) -> float:
    """Percentage of (mask) voxels with det J <= 0; NaN for an empty mask."""
    values = masked_values(detj, mask)
    return float(100.0 * (values <= 0).mean()) if values.size else float("nan")
