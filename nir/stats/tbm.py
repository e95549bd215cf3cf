"""Tensor-based morphometry: a voxelwise GLM on smoothed log-Jacobian maps in the template's
brain mask, corrected for the family-wise error by Freedman-Lane permutation of the
threshold-free cluster enhancement (TFCE) of a variance-smoothed pseudo-t (default), by max-T
permutation of the pseudo-t itself, or by Benjamini-Hochberg FDR on the parametric t; maps are
written on the template grid with its header."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage

from nir.errors import NirInputError
from nir.spatial.geometry import voxel_sizes
from nir.spatial.io import load_labels, load_volume, same_grid, save_volume, write_text
from nir.stats import tfce
from nir.stats.glm import fdr, fit_contrast
from nir.stats.permutation import PermutationResult, freedman_lane
from nir.study.design import Design

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
MIN_DETJ = 1e-3  # folded voxels (det J <= 0) are clipped here before the log
EDGE_MM = 2.0  # the mask's outer shell left out: det J at the brain's outline follows the
#                background edge, not the anatomy
CORRECTIONS = ("tfce", "fwe", "fdr")


def smooth_in_mask(data: np.ndarray, mask: np.ndarray, fwhm_mm: float,
                   spacing: Sequence[float]) -> np.ndarray:
    """Gaussian smoothing of ``data`` restricted to ``mask`` (normalised convolution: values
    outside the mask neither leak in nor dilute the border); zero outside the mask."""
    mask = np.asarray(mask, bool)
    if fwhm_mm <= 0 or not mask.any():
        return np.where(mask, data, 0.0)
    out = np.zeros(mask.shape)
    out[mask] = MaskSmoother(mask, fwhm_mm, spacing)(np.asarray(data, np.float64)[mask])
    return out


class MaskSmoother:
    """Gaussian smoothing restricted to a mask (normalised convolution) as a linear map of the
    values at the mask's voxels (in ``mask``'s C order): the normalising weight image is
    computed once, and the volume is cropped to the mask's bounding box plus the kernel's reach
    (the same numbers, less work). :func:`smooth_in_mask` applies it to a volume; it is also the
    variance smoother of :func:`nir.stats.permutation.freedman_lane`."""

    def __init__(self, mask: np.ndarray, fwhm_mm: float, spacing: Sequence[float]) -> None:
        if fwhm_mm <= 0:
            raise ValueError(f"fwhm_mm must be positive, got {fwhm_mm}")
        self.sigma = [fwhm_mm * FWHM_TO_SIGMA / s for s in spacing]
        reach = [int(4.0 * s + 0.5) for s in self.sigma]  # gaussian_filter's truncate=4 radius
        where = np.argwhere(mask)
        low, high = where.min(0), where.max(0) + 1
        self.box = tuple(slice(max(0, lo - r), min(size, hi + r))
                         for lo, hi, r, size in zip(low, high, reach, mask.shape, strict=True))
        self.mask = np.asarray(mask, bool)[self.box]
        self.weight = ndimage.gaussian_filter(self.mask.astype(np.float64), self.sigma)[self.mask]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Smoothed ``values`` (one per mask voxel) as float64."""
        volume = np.zeros(self.mask.shape)
        volume[self.mask] = values
        return ndimage.gaussian_filter(volume, self.sigma)[self.mask] / self.weight


@dataclass
class TbmResult:
    """Volumes on the template grid (zero outside the mask) and the summary of the test."""

    maps: dict[str, np.ndarray]  # t, p, q, significant, effect (and tfce with TFCE)
    log_jacobians: list[np.ndarray]  # the smoothed GLM inputs, per subject
    summary: dict[str, Any]


def voxelwise_tbm(jacobians: Sequence[str | Path], mask_path: str | Path, design: Design,
                  fwhm_mm: float = 6.0, q: float = 0.05, correction: str = "tfce",
                  permutations: int = 1000, variance_fwhm_mm: float = 12.0,
                  seed: int = 0, workers: int = 1) -> TbmResult:
    """GLM of the smoothed log det J of every subject (in ``design`` order) on the design, at the
    voxels of the mask at least EDGE_MM inside it, testing the group column at level ``q``.

    ``correction="tfce"``: t is the pseudo-t (residual variance smoothed in the mask with
    ``variance_fwhm_mm``, 0 for the plain t), ``tfce`` its threshold-free cluster enhancement
    (:mod:`nir.stats.tfce`), p the uncorrected and q the FWE-corrected permutation p of the TFCE
    (Freedman-Lane, ``permutations`` drawn with ``seed``, max |TFCE| over the mask; the maps
    enhanced in ``workers`` processes).
    ``correction="fwe"``: the same without the TFCE
    (max |pseudo-t|). ``correction="fdr"``: t and p parametric, q the Benjamini-Hochberg
    adjusted p. Either way the voxels with q <= ``q`` are significant and the effect is the OLS
    log-J difference."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    mask_volume = load_labels(mask_path)
    spacing = voxel_sizes(mask_volume.affine)
    shell = max(1, round(EDGE_MM / float(spacing.min())))
    mask = ndimage.binary_erosion(mask_volume.data.numpy() > 0, iterations=shell)
    smoothed, folded = [], 0
    for path in jacobians:
        detj = load_volume(path)
        if not same_grid(detj.shape, detj.affine, mask_volume.shape, mask_volume.affine):
            raise NirInputError(path, f"not on the template grid of {mask_path}")
        values = detj.data.numpy()
        folded += int((values[mask] <= 0).sum())
        smoothed.append(smooth_in_mask(np.log(np.clip(values, MIN_DETJ, None)), mask, fwhm_mm,
                                       spacing).astype(np.float32))
    y = np.stack([s[mask] for s in smoothed])
    contrast = np.zeros(design.matrix().shape[1])
    contrast[1] = 1.0
    test = fit_contrast(y, design.matrix(), contrast)
    permuted = None
    extra_maps = {}
    if correction == "fdr":
        t, p = test.t, test.p
        adjusted, significant = fdr(test.p, q)
    else:
        smoother = (MaskSmoother(mask, variance_fwhm_mm, spacing) if variance_fwhm_mm > 0
                    else None)
        enhance = tfce.Tfce(mask) if correction == "tfce" else None
        permuted = freedman_lane(y, design.matrix(), 1, permutations, seed, smoother,
                                 enhance=enhance, workers=workers)
        t, p, adjusted = permuted.statistic, permuted.p_uncorrected, permuted.p_fwe
        significant = adjusted <= q
        if enhance is not None:
            extra_maps["tfce"] = permuted.enhanced
    maps = {}
    for name, values in (("t", t), ("p", p), ("q", adjusted),
                         ("significant", significant.astype(np.float32)),
                         ("effect", test.effect), *extra_maps.items()):
        volume = np.zeros(mask.shape, dtype=np.float32)
        volume[mask] = values
        if name in ("p", "q"):
            volume[~mask] = 1.0
        maps[name] = volume
    summary = _summary(maps, mask_volume.affine, design, test.df, fwhm_mm, q, folded)
    if permuted is not None:
        summary.update(_permutation_summary(permuted, q, variance_fwhm_mm, seed))
    return TbmResult(maps, smoothed, summary)


def _permutation_summary(permuted: PermutationResult, q: float, variance_fwhm_mm: float,
                         seed: int) -> dict[str, Any]:
    statistic = (f"pseudo-t (residual variance smoothed in the mask, {variance_fwhm_mm:g} mm "
                 "FWHM)" if variance_fwhm_mm > 0 else "t")
    quantiles = np.quantile(permuted.null_max, [0.5, 0.95, 0.99])
    common = {
        "permutations": permuted.n_permutations, "seed": seed,
        "variance_fwhm_mm": variance_fwhm_mm,
        "null_max_quantiles": {f"{round(100 * k)}%": round(float(v), 3)
                               for k, v in zip((0.5, 0.95, 0.99), quantiles, strict=True)},
    }
    scheme = (f"Freedman-Lane, {permuted.n_permutations} permutations, identity included")
    if permuted.enhanced is None:
        return {**common,
                "correction": f"FWE by permutation (max |{statistic}| over the mask; {scheme})",
                "correction_method": "fwe",
                "fwe_t_threshold": round(permuted.fwe_threshold(q), 4)}
    return {**common,
            "correction": f"TFCE of the {statistic}, FWE by permutation (max |TFCE| over the "
                          f"mask; {scheme})",
            "correction_method": "tfce",
            "tfce": {"E": tfce.EXTENT_EXPONENT, "H": tfce.HEIGHT_EXPONENT, "dh": tfce.STEP,
                     "connectivity": tfce.CONNECTIVITY},
            "fwe_tfce_threshold": round(permuted.fwe_threshold(q), 4)}


def _summary(maps: dict[str, np.ndarray], affine: np.ndarray, design: Design, df: int,
             fwhm_mm: float, q: float, folded: int) -> dict[str, Any]:
    significant = maps["significant"] > 0
    t = maps["t"]
    peak = np.unravel_index(np.argmax(np.abs(np.where(significant, t, 0.0))
                                      if significant.any() else np.abs(t)), t.shape)
    return {
        "contrast": f"{design.levels[1]} - {design.levels[0]}",
        "levels": list(design.levels),
        "subjects": {level: int(sum(g == level for g in design.groups))
                     for level in design.levels},
        "covariates": list(design.covariates), "df": df, "fwhm_mm": fwhm_mm,
        "correction": "Benjamini-Hochberg FDR (scipy.stats.false_discovery_control)",
        "correction_method": "fdr", "q": q,
        "significant_voxels": int(significant.sum()),
        "t_threshold": float(np.abs(t[significant]).min()) if significant.any() else None,
        "peak_t": float(t[peak]), "peak_voxel": [int(i) for i in peak],
        "peak_mm": [round(float(c), 2) for c in nib.affines.apply_affine(affine, peak)],
        "peak_effect_percent": round(100.0 * float(np.expm1(maps["effect"][peak])), 2),
        "folded_voxels_clipped": folded,
    }


def map_paths(paths: Sequence[str | Path]) -> dict[str, Path]:
    """The ``tbm_{name}.nii.gz`` files written by :func:`write_tbm`, by name."""
    return {Path(p).name.removeprefix("tbm_").removesuffix(".nii.gz"): Path(p) for p in paths}


def write_tbm(result: TbmResult, template: str | Path, out_dir: str | Path,
              subjects: Sequence[str], logjac_paths: Sequence[str | Path]) -> None:
    """Write ``tbm_{t,p,q,significant,effect}.nii.gz`` and ``tbm_summary.json`` in ``out_dir``
    and each subject's smoothed log det J to ``logjac_paths``, all with the template's header."""
    reference = load_volume(template)
    out = Path(out_dir)
    for name, volume in result.maps.items():
        dtype = np.uint8 if name == "significant" else np.float32
        save_volume(volume, reference.affine, out / f"tbm_{name}.nii.gz",
                    header=reference.header, dtype=dtype)
    for data, path in zip(result.log_jacobians, logjac_paths, strict=True):
        save_volume(data, reference.affine, path, header=reference.header, dtype=np.float32)
    record = {"subjects_in_order": list(subjects), **result.summary}
    write_text(json.dumps(record, indent=1), out / "tbm_summary.json")
