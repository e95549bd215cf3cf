"""An ordinary-least-squares GLM fitted to many outcomes at once, with a parametric t-test of one
contrast and Benjamini-Hochberg FDR correction (``scipy.stats.false_discovery_control``).

Used for the per-structure volume tests (a few dozen outcomes) and for the voxelwise test when
``tbm.correction`` is ``fdr``. The voxelwise default is FWE by permutation of the TFCE of a
pseudo-t (:mod:`nir.stats.permutation`, :mod:`nir.stats.tfce`): with the few subjects of a
template study (df 9 for 6 + 6 and one covariate) the t of a voxel is heavy-tailed, and
whole-brain BH at ~10^5 voxels then needs p values that a realistic effect does not reach,
while a pseudo-t with a smoothed variance has a far lighter null maximum (measured on the demo:
95 % of the permutation maxima below 5.9 against 12.4 for the plain t), which only permutation
can calibrate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class ContrastTest:
    """Per outcome: the contrast estimate, its t statistic and two-sided p value."""

    effect: np.ndarray
    t: np.ndarray
    p: np.ndarray
    df: int


def fit_contrast(y: np.ndarray, X: np.ndarray, contrast: np.ndarray) -> ContrastTest:
    """OLS of every column of ``y`` (n, V) on ``X`` (n, p); t-test of ``contrast`` (p,)."""
    n, p = X.shape
    df = n - p
    if df < 1:
        raise ValueError(f"{n} observations leave no degrees of freedom for {p} columns")
    pinv = np.linalg.pinv(X)
    beta = pinv @ y
    residual = y - X @ beta
    sigma2 = (residual**2).sum(0) / df
    scale = float(contrast @ pinv @ pinv.T @ contrast)  # c (X'X)^-1 c'
    effect = contrast @ beta
    se = np.sqrt(sigma2 * scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, effect / se, 0.0)
    return ContrastTest(effect, t, 2.0 * stats.t.sf(np.abs(t), df), df)


def fdr(p: np.ndarray, q: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """BH-adjusted p values and the discoveries at FDR ``q``."""
    adjusted = stats.false_discovery_control(np.asarray(p, dtype=float), method="bh")
    return adjusted, adjusted <= q


def cohens_d(y: np.ndarray, indicator: np.ndarray) -> np.ndarray:
    """(mean of group 1 - mean of group 0) / pooled SD, per column of ``y`` (n, V)."""
    a, b = y[indicator == 0], y[indicator == 1]
    pooled = ((len(a) - 1) * a.var(0, ddof=1) + (len(b) - 1) * b.var(0, ddof=1)) / (
        len(a) + len(b) - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pooled > 0, (b.mean(0) - a.mean(0)) / np.sqrt(pooled), 0.0)
