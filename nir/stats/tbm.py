"""Tensor-based morphometry: a voxelwise GLM on smoothed log-Jacobian maps in the template's
brain mask, with BH-FDR correction; maps are written on the template grid with its header."""

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
from nir.stats.glm import fdr, fit_contrast
from nir.study.design import Design

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
MIN_DETJ = 1e-3  # folded voxels (det J <= 0) are clipped here before the log
EDGE_MM = 2.0  # the mask's outer shell left out: det J at the brain's outline follows the
#                background edge, not the anatomy


def smooth_in_mask(data: np.ndarray, mask: np.ndarray, fwhm_mm: float,
                   spacing: Sequence[float]) -> np.ndarray:
    """Gaussian smoothing of ``data`` restricted to ``mask`` (normalised convolution: values
    outside the mask neither leak in nor dilute the border); zero outside the mask."""
    if fwhm_mm <= 0:
        return np.where(mask, data, 0.0)
    sigma = [fwhm_mm * FWHM_TO_SIGMA / s for s in spacing]
    weight = ndimage.gaussian_filter(mask.astype(np.float64), sigma)
    total = ndimage.gaussian_filter(np.where(mask, data, 0.0).astype(np.float64), sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mask, total / weight, 0.0)


@dataclass
class TbmResult:
    """Volumes on the template grid (zero outside the mask) and the summary of the test."""

    maps: dict[str, np.ndarray]  # t, p, q, significant, effect
    log_jacobians: list[np.ndarray]  # the smoothed GLM inputs, per subject
    summary: dict[str, Any]


def voxelwise_tbm(jacobians: Sequence[str | Path], mask_path: str | Path, design: Design,
                  fwhm_mm: float = 6.0, q: float = 0.05) -> TbmResult:
    """GLM of the smoothed log det J of every subject (in ``design`` order) on the design, at the
    voxels of the mask at least EDGE_MM inside it; the group contrast's t, p, FDR-adjusted p (q),
    discoveries and effect (log-J difference)."""
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
    adjusted, significant = fdr(test.p, q)
    maps = {}
    for name, values in (("t", test.t), ("p", test.p), ("q", adjusted),
                         ("significant", significant.astype(np.float32)),
                         ("effect", test.effect)):
        volume = np.zeros(mask.shape, dtype=np.float32)
        volume[mask] = values
        if name in ("p", "q"):
            volume[~mask] = 1.0
        maps[name] = volume
    return TbmResult(maps, smoothed, _summary(maps, mask_volume.affine, design, test.df,
                                              fwhm_mm, q, folded))


def _summary(maps: dict[str, np.ndarray], affine: np.ndarray, design: Design, df: int,
             fwhm_mm: float, q: float, folded: int) -> dict[str, Any]:
    significant = maps["significant"] > 0
    t = maps["t"]
    peak = np.unravel_index(np.argmax(np.abs(np.where(significant, t, 0.0))
                                      if significant.any() else np.abs(t)), t.shape)
    return {
        "contrast": f"{design.levels[1]} - {design.levels[0]}",
        "subjects": {level: int(sum(g == level for g in design.groups))
                     for level in design.levels},
        "covariates": list(design.covariates), "df": df, "fwhm_mm": fwhm_mm,
        "correction": "Benjamini-Hochberg FDR (scipy.stats.false_discovery_control)", "q": q,
        "significant_voxels": int(significant.sum()),
        "t_threshold": float(np.abs(t[significant]).min()) if significant.any() else None,
        "peak_t": float(t[peak]), "peak_voxel": [int(i) for i in peak],
        "peak_mm": [round(float(c), 2) for c in nib.affines.apply_affine(affine, peak)],
        "peak_effect_percent": round(100.0 * float(np.expm1(maps["effect"][peak])), 2),
        "folded_voxels_clipped": folded,
    }


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
