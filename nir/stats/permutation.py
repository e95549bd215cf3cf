"""Permutation inference for one column of a GLM fitted to many outcomes at once, with
family-wise error (FWE) control by the maximum statistic.

The permutation scheme is Freedman & Lane's (1983), FSL randomise's default: the data are
split into the fit and the residuals of the *reduced* model (the design without the tested
column), the residuals are permuted, added back to the fit, and the *full* model is refitted.
Nuisance covariates, including ones correlated with the tested column, thus keep their effect in
every permutation, and only the tested column's association is broken.

The statistic is a t, or a pseudo-t when a ``smooth`` operator is given: the residual variance
is smoothed across outcomes (e.g. voxels) before the division, which steadies the denominator
when the residual degrees of freedom are few (Holmes et al. 1996, SnPM's "variance smoothing").
Its null distribution is unknown, which is why it is only used with permutation.

An ``enhance`` map (e.g. :class:`nir.stats.tfce.Tfce`, threshold-free cluster enhancement) may
transform each permutation's statistic map before the maximum is taken; the p values are then
those of the enhanced map, from the same permutations.

Per outcome the result holds the two-sided uncorrected permutation p and the FWE-corrected p:
the fraction of permutations whose largest |statistic| (enhanced, if so) over all outcomes
reaches the outcome's observed one. The identity is the first permutation and is counted in
both, so neither p is ever below 1 / n_permutations.

Speed: the smoothed residual variance of a permutation is a quadratic form in the reduced-model
residuals, ``sum_kl Q_kl r_k r_l`` with ``Q = P' (I - H) P`` (P the permutation, H the full
model's hat matrix). With a *linear* smoothing operator the n(n+1)/2 products ``r_k r_l`` are
smoothed once, and every permutation is then a small matrix product (strategy ``"products"``).
When those products would not fit in memory (many subjects) each permutation's variance is
formed and smoothed directly (``"direct"``), which gives the same numbers more slowly.
An ``enhance`` map (TFCE: many small numpy steps per map, which neither BLAS threads nor Python
threads speed up) may run in ``workers`` forked processes, a chunk of permutations each; the
numbers and their order are those of one process.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np

Smoother = Callable[[np.ndarray], np.ndarray]
"""A linear map of one value per outcome, shape (V,), to its smoothed version, shape (V,)."""
Enhancer = Callable[[np.ndarray], np.ndarray]
"""A map of one statistic map, shape (V,), to its enhanced version (e.g. TFCE), shape (V,)."""
# (index of the first permutation, (k, V) statistics, (k, V) statistics counted for the p values)
Chunks = Iterator[tuple[int, np.ndarray, np.ndarray]]

# |stat_perm| >= |stat_obs| is tested as |stat_perm| >= |stat_obs| * (1 - TIE_TOLERANCE):
# permutations equivalent to the observed labelling may differ from it by rounding only
TIE_TOLERANCE = 1e-5
PRODUCTS_MEMORY_BYTES = 1 << 30  # "auto" uses the products strategy while they fit in this
CHUNK_ELEMENTS = 1 << 21  # permutations x outcomes processed at once (~8 MB per float32 array)


@dataclass
class PermutationResult:
    """Observed statistic, uncorrected and FWE-corrected permutation p per outcome (two-sided),
    the maximum |statistic| of every permutation (the identity first) and the permutations.
    With an ``enhance`` map, ``enhanced`` is the observed statistic enhanced, and the p values
    and maxima are those of the enhanced maps."""

    statistic: np.ndarray
    p_uncorrected: np.ndarray
    p_fwe: np.ndarray
    null_max: np.ndarray
    permutations: np.ndarray  # (n_permutations, n) row i: subject order of permutation i
    df: int
    enhanced: np.ndarray | None = None

    @property
    def n_permutations(self) -> int:
        """Number of permutations, the identity included."""
        return len(self.null_max)

    def fwe_threshold(self, level: float = 0.05) -> float:
        """The |statistic| (enhanced, if so) above which an outcome is FWE-significant at
        ``level``."""
        return fwe_threshold(self.null_max, level)


def draw_permutations(n: int, n_permutations: int, seed: int = 0) -> np.ndarray:
    """(N, n) permutations of ``range(n)``, the identity first.

    All n! of them (N = n!) when there are at most ``n_permutations``; otherwise the identity
    and ``n_permutations - 1`` drawn with ``numpy.random.default_rng(seed)`` (repeats possible,
    as in FSL randomise's random mode)."""
    if n < 1 or n_permutations < 1:
        raise ValueError(f"need subjects and permutations, got n={n}, {n_permutations}")
    if math.factorial(n) <= n_permutations:
        return np.array(list(itertools.permutations(range(n))), dtype=np.intp).reshape(-1, n)
    rng = np.random.default_rng(seed)
    drawn = rng.permuted(np.tile(np.arange(n, dtype=np.intp), (n_permutations - 1, 1)), axis=1)
    return np.vstack([np.arange(n, dtype=np.intp)[None], drawn])


def fwe_threshold(null_max: np.ndarray, level: float = 0.05) -> float:
    """The value u with: |stat| > u if and only if FWE p = #(null_max >= |stat|) / N <= level,
    i.e. the (floor(level N) + 1)-th largest maximum (ties and TIE_TOLERANCE aside)."""
    ordered = np.sort(np.asarray(null_max, dtype=float))[::-1]
    allowed = math.floor(level * len(ordered) + 1e-9)
    return float(ordered[allowed]) if allowed < len(ordered) else 0.0


def freedman_lane(y: np.ndarray, design: np.ndarray, column: int, n_permutations: int = 1000,
                  seed: int = 0, smooth: Smoother | None = None,
                  strategy: Literal["auto", "products", "direct"] = "auto",
                  dtype: type = np.float32, enhance: Enhancer | None = None,
                  workers: int = 1) -> PermutationResult:
    """Freedman-Lane permutation test of ``design[:, column]`` for every column of ``y``.

    y: (n, V) outcomes (e.g. voxels), design: (n, p) full-rank design with the nuisance columns
    (intercept, covariates) beside the tested one. ``smooth`` (linear, see :data:`Smoother`)
    smooths the residual variance over the outcomes before the t is formed (a pseudo-t); None
    gives the ordinary t. ``dtype`` is the working precision of the per-permutation arithmetic
    (the fits and the smoothing are done in float64). Permutations: :func:`draw_permutations`.
    ``enhance`` (see :data:`Enhancer`) is applied to every permutation's map before the p
    values are counted, in ``workers`` processes (:func:`enhancing_processes`).
    """
    y = np.asarray(y, dtype=np.float64)
    X = np.asarray(design, dtype=np.float64)
    n, p = X.shape
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"y has shape {y.shape}; expected ({n}, V) for a design of {n} rows")
    rank = int(np.linalg.matrix_rank(X))
    df = n - rank
    if rank < p:
        raise ValueError(f"the design's {p} columns have rank {rank}")
    if df < 1:
        raise ValueError(f"{n} observations leave no degrees of freedom for {p} columns")
    if not 0 <= column < p:
        raise ValueError(f"column {column} is not one of the design's {p} columns")
    Z = np.delete(X, column, axis=1)
    reduced_fit = Z @ (np.linalg.pinv(Z) @ y) if Z.shape[1] else np.zeros_like(y)
    residual = y - reduced_fit  # the reduced model's residuals: what is permuted
    pinv = np.linalg.pinv(X)
    a = pinv[column]  # the tested coefficient is a @ y
    scale = float(a @ a)  # c (X'X)^-1 c'
    offset = a @ reduced_fit  # zero up to rounding: the reduced fit has no tested component
    M = np.eye(n) - X @ pinv  # the full model's residual-forming matrix
    permutations = draw_permutations(n, n_permutations, seed)
    if strategy == "auto":
        pairs = n * (n + 1) // 2
        strategy = ("products" if pairs * y.shape[1] * np.dtype(dtype).itemsize
                    <= PRODUCTS_MEMORY_BYTES else "direct")
    if strategy == "products":
        stats = _products(residual, a, offset, M, permutations, scale / df, smooth, dtype)
    elif strategy == "direct":
        stats = _direct(residual, a, offset, M, permutations, scale / df, smooth, dtype)
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    if enhance is not None:
        stats = _enhanced(stats, enhance, enhancing_processes(workers))
    return _collect(stats, permutations, df, enhance is not None)


def enhancing_processes(workers: int) -> int:
    """How many processes enhance the maps: ``workers`` where processes can be forked (Linux,
    macOS), else 1. Forked, not spawned: a spawned process re-runs the main script, which a
    Snakemake ``script:`` does not guard."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return workers if "fork" in multiprocessing.get_all_start_methods() else 1


def _enhance_rows(enhance: Enhancer, stat: np.ndarray) -> np.ndarray:
    return np.stack([enhance(row) for row in stat])


def _enhanced(chunks: Chunks, enhance: Enhancer, workers: int) -> Chunks:
    """Yield (first, statistic, enhanced statistic) chunks, in order; with ``workers`` > 1
    the chunks are enhanced in that many forked processes, up to two per process queued."""
    if workers == 1:
        for start, stat, _ in chunks:
            yield start, stat, _enhance_rows(enhance, stat)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        queued: deque[tuple[int, np.ndarray, Future]] = deque()
        for start, stat, _ in chunks:
            queued.append((start, stat, pool.submit(_enhance_rows, enhance, stat)))
            yield from _finished(queued, 2 * workers)
        yield from _finished(queued, 0)


def _finished(queued: deque[tuple[int, np.ndarray, Future]], keep: int) -> Chunks:
    """Yield the oldest queued chunks, once enhanced, until ``keep`` are left."""
    while len(queued) > keep:
        first, stat, future = queued.popleft()
        yield first, stat, future.result()


def _pseudo_t(effect: np.ndarray, variance: np.ndarray, scale: float) -> np.ndarray:
    """effect / sqrt(variance * scale), zero where the variance is not positive."""
    positive = variance > 0
    denominator = np.sqrt(np.where(positive, variance, 1.0) * scale)
    return np.where(positive, effect / denominator, 0.0).astype(effect.dtype, copy=False)


def _products(residual: np.ndarray, a: np.ndarray, offset: np.ndarray, M: np.ndarray,
              permutations: np.ndarray, scale: float, smooth: Smoother | None,
              dtype: type) -> Chunks:
    """Yield (first, stat) chunks: variance as smoothed products of residuals, combined per
    permutation by Q = P' M P."""
    n, count = residual.shape
    first, second = np.triu_indices(n)
    products = np.empty((len(first), count), dtype=dtype)
    for i, (r, s) in enumerate(zip(first, second, strict=True)):
        product = residual[r] * residual[s]
        products[i] = smooth(product) if smooth is not None else product
    weights = np.where(first == second, 1.0, 2.0)
    residual_w = residual.astype(dtype)
    offset_w = offset.astype(dtype)
    chunk = max(1, CHUNK_ELEMENTS // max(count, 1))
    for start in range(0, len(permutations), chunk):
        rows = permutations[start:start + chunk]
        # effect of permutation P: a @ (P r) = (P' a) @ r; P' a puts a[i] at rows[i]
        scatter = np.zeros((len(rows), n))
        np.put_along_axis(scatter, rows, a[None, :], axis=1)
        quadratic = np.stack([M[np.ix_(inv, inv)] for inv in np.argsort(rows, axis=1)])
        coefficients = (quadratic[:, first, second] * weights).astype(dtype)
        effect = scatter.astype(dtype) @ residual_w
        effect += offset_w
        stat = _pseudo_t(effect, coefficients @ products, scale)
        yield start, stat, stat


def _direct(residual: np.ndarray, a: np.ndarray, offset: np.ndarray, M: np.ndarray,
            permutations: np.ndarray, scale: float, smooth: Smoother | None,
            dtype: type) -> Chunks:
    """Yield (first, stat) chunks: each permutation refitted and its variance smoothed."""
    for start, rows in enumerate(permutations):
        shuffled = residual[rows]
        variance = ((M @ shuffled) ** 2).sum(0)
        if smooth is not None:
            variance = smooth(variance)
        effect = (a @ shuffled + offset).astype(dtype)
        stat = _pseudo_t(effect, variance.astype(dtype), scale)[None]
        yield start, stat, stat


def _collect(chunks: Chunks, permutations: np.ndarray, df: int,
             enhanced: bool) -> PermutationResult:
    null_max = np.empty(len(permutations))
    observed = counted = exceed = None
    for start, stat, score in chunks:
        magnitude = np.abs(score)
        if observed is None:
            observed = stat[0].astype(np.float64)
            counted = score[0].astype(np.float64)
            bound = (np.abs(counted) * (1.0 - TIE_TOLERANCE)).astype(score.dtype)
            exceed = np.zeros(score.shape[1], dtype=np.int64)
        null_max[start:start + len(score)] = magnitude.max(axis=1)
        exceed += (magnitude >= bound).sum(axis=0)
    total = len(permutations)
    ordered = np.sort(null_max)
    at_least = total - np.searchsorted(ordered, np.abs(counted) * (1.0 - TIE_TOLERANCE),
                                       side="left")
    return PermutationResult(observed, exceed / total, at_least / total, null_max,
                             permutations, df, counted if enhanced else None)
