"""One subject through the whole preprocessing stage; the API the CLI and the workflow call."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from nir.device import resolve_device
from nir.errors import NirInputError
from nir.preprocess.affine import DEFAULT_ITERATIONS, DEFAULT_LEVELS_MM, register_affine
from nir.preprocess.bias import correct_bias
from nir.preprocess.brain_extraction import brain_mask
from nir.preprocess.given_mask import load_given_mask
from nir.preprocess.qc import save_qc_figure
from nir.preprocess.reorient import from_canonical, to_canonical
from nir.preprocess.resample import resample_image, resample_labels
from nir.preprocess.template import DEFAULT_GRID_SHAPE, common_grid, load_template
from nir.preprocess.transform_files import write_affine_text, write_itk_affine
from nir.spatial.geometry import voxel_sizes
from nir.spatial.intensity import percentile_scale
from nir.spatial.io import load_labels, load_volume, save_volume
from nir.summary import versions, write_json

PACKAGES = ("nir-cohort", "torch", "numpy", "nibabel", "scipy", "nilearn", "deepbet")

SUFFIXES = {"brainmask": "_brainmask.nii.gz", "preproc": "_preproc.nii.gz",
            "labels": "_labels.nii.gz", "affine": "_affine.txt", "affine_itk": "_affine_itk.txt",
            "qc": "_qc.png", "summary": "_summary.json"}
MIN_MASK_ML = 100.0


def output_paths(out_prefix: str | Path, with_labels: bool) -> dict[str, Path]:
    """Every file :func:`preprocess_subject` writes for ``out_prefix``."""
    keys = [k for k in SUFFIXES if with_labels or k != "labels"]
    return {k: Path(f"{out_prefix}{SUFFIXES[k]}") for k in keys}


def preprocess_subject(t1w: str | Path, out_prefix: str | Path, labels: str | Path | None = None,
                       *, brainmask: str | Path | None = None, template: str = "mni152",
                       skull_strip: str = "auto", bias_correct: bool = True,
                       grid_shape: tuple[int, int, int] = DEFAULT_GRID_SHAPE,
                       grid_spacing: float = 1.0,
                       levels_mm: tuple[float, ...] = DEFAULT_LEVELS_MM,
                       iterations: tuple[int, ...] = DEFAULT_ITERATIONS,
                       device: str = "auto", seed: int = 0) -> dict:
    """Preprocess one T1w image (and optional labels); returns the summary dict also saved as
    ``PREFIX_summary.json``. A given ``brainmask`` replaces brain extraction (``skull_strip`` is
    then unused). Nothing is written unless every input is valid."""
    dev = str(resolve_device(device))
    torch.manual_seed(seed)
    seconds: dict[str, float] = {}

    @contextmanager
    def timed(step: str):
        start = time.perf_counter()
        yield
        seconds[step] = round(time.perf_counter() - start, 3)

    with timed("load"):
        vol = load_volume(t1w)
        lab = load_labels(labels, like=vol) if labels is not None else None
        given = None if brainmask is None else load_given_mask(brainmask, vol, dev)
        tpl = load_template(template)
    with timed("reorient"):
        native, affine, ornt = to_canonical(vol.data.numpy(), vol.affine)
        spacing = voxel_sizes(affine)
    with timed("brain_extraction"):
        if given is None:
            mask, method = brain_mask(native, spacing, skull_strip, dev)
        else:
            mask, method = to_canonical(given, vol.affine)[0], "given"
    mask_ml = float(mask.sum() * np.prod(spacing) / 1000.0)
    if mask_ml < MIN_MASK_ML:
        what = "not a usable brain T1w" if given is None else "not a brain mask"
        raise NirInputError(t1w if given is None else brainmask,
                            f"brain mask is only {mask_ml:.1f} ml: {what}")
    image = np.where(mask, native, 0.0).astype(np.float32)
    if bias_correct:
        with timed("bias_correction"):
            image = correct_bias(image, mask, spacing)
    with timed("normalise"):
        image = percentile_scale(image, mask, high=99.0, low=1.0) * mask
    with timed("affine"):
        result = register_affine(tpl.image, tpl.affine, tpl.mask, image, affine, levels_mm,
                                 iterations, dev, seed)
    with timed("resample"):
        grid_affine = common_grid(tpl, grid_shape, grid_spacing)
        aligned = np.clip(resample_image(image, affine, result.matrix, grid_shape, grid_affine,
                                         dev), 0.0, 1.0)
        template_grid = resample_image(tpl.image, tpl.affine, np.eye(4), grid_shape,
                                       grid_affine, dev)
        aligned_labels = None
        if lab is not None:
            lab_canonical, _, _ = to_canonical(lab.data.numpy(), lab.affine)
            aligned_labels = resample_labels(lab_canonical, affine, result.matrix, grid_shape,
                                             grid_affine, dev)

    paths = output_paths(out_prefix, lab is not None)
    summary = {
        "input": str(t1w), "labels": None if labels is None else str(labels),
        "brainmask": None if brainmask is None else str(brainmask),
        "parameters": {"template": template, "skull_strip": skull_strip,
                       "skull_strip_used": method, "bias_correct": bias_correct,
                       "grid_shape": list(grid_shape), "grid_spacing_mm": grid_spacing,
                       "levels_mm": list(levels_mm), "iterations": list(iterations),
                       "device": dev, "seed": seed},
        "seconds": seconds, "mask_volume_ml": round(mask_ml, 2),
        "affine_metric": {"name": "global NCC in template brain", "value": round(result.ncc, 5)},
        "affine_convention": "template world RAS mm -> native world RAS mm",
        "grid_affine": grid_affine.tolist(), "affine": result.matrix.tolist(),
        "versions": versions(PACKAGES), "outputs": {k: str(p) for k, p in paths.items()},
    }
    with timed("write"):
        native_mask = from_canonical(mask.astype(np.uint8), ornt)
        save_volume(native_mask, vol.affine, paths["brainmask"], header=vol.header,
                    dtype=np.uint8)
        save_volume(aligned.astype(np.float32), grid_affine, paths["preproc"], dtype=np.float32)
        if aligned_labels is not None:
            save_volume(aligned_labels.astype(np.int32), grid_affine, paths["labels"],
                        dtype=np.int32, intent="label")
        write_affine_text(result.matrix, paths["affine"])
        write_itk_affine(result.matrix, paths["affine_itk"])
        save_qc_figure(native, mask, aligned, template_grid, paths["qc"],
                       title=f"{Path(t1w).name}  NCC={result.ncc:.3f}")
    summary["seconds"]["total"] = round(sum(seconds.values()), 3)
    write_json(summary, paths["summary"])
    return summary

