"""Register one pair of files and write the ANTs-style outputs under a prefix."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nir.engine.params import RegistrationParams
from nir.engine.register import register
from nir.evaluation.metrics import folding_percent
from nir.spatial.displacement import save_warp
from nir.spatial.io import Volume, load_labels, load_volume, save_volume
from nir.spatial.jacobian import jacobian_determinant_map
from nir.spatial.warp import moving_coordinates, warp_image, warp_labels
from nir.summary import peak_device_mb, peak_rss_mb, versions, write_json

LOSS_CURVE_POINTS = 200


def output_paths(prefix: str | Path, with_labels: bool,
                 with_inverse: bool = False) -> dict[str, Path]:
    """The files ``nir register`` writes for ``prefix``."""
    p = str(prefix)
    paths = {"warped": Path(f"{p}_warped.nii.gz"), "warp": Path(f"{p}_warp.nii.gz"),
             "jacobian": Path(f"{p}_jacobian.nii.gz"), "summary": Path(f"{p}_summary.json")}
    if with_labels:
        paths["warped_labels"] = Path(f"{p}_warped_labels.nii.gz")
    if with_inverse:
        paths["inverse_warp"] = Path(f"{p}_inverse_warp.nii.gz")
    return paths


def _thin(curve: list[float]) -> list[float]:
    step = max(1, len(curve) // LOSS_CURVE_POINTS)
    return [round(v, 6) for v in curve[::step]]


def load_pair(fixed: str | Path, moving: str | Path,
              moving_labels: str | Path | None) -> tuple[Volume, Volume, Volume | None]:
    """Read and check a pair's fixed and moving images and the moving labels (on its grid)."""
    fixed_v = load_volume(fixed)
    moving_v = load_volume(moving)
    labels_v = load_labels(moving_labels, like=moving_v) if moving_labels else None
    return fixed_v, moving_v, labels_v


def write_outputs(fixed_v: Volume, moving_v: Volume, labels_v: Volume | None,
                  displacement: torch.Tensor, paths: dict[str, Path],
                  label_interpolation: str = "onehot",
                  device: torch.device | str = "cpu") -> float:
    """Write the warped image (and labels), warp and det J map of a fixed-grid displacement.

    ``displacement`` is (I, J, K, 3) in RAS mm on the fixed grid.  Files are compressed in as
    many background threads as torch uses (zlib releases the GIL), overlapping the
    resampling of the next output.  Returns the % of foreground (fixed > 0) voxels with
    det J <= 0.
    """
    device = torch.device(device)
    hdr = fixed_v.header
    with ThreadPoolExecutor(max_workers=torch.get_num_threads()) as pool:
        jobs = [pool.submit(save_warp, displacement, fixed_v.affine, paths["warp"], header=hdr)]
        coords = moving_coordinates(displacement, fixed_v.affine, moving_v.shape,
                                    moving_v.affine)
        jobs.append(pool.submit(save_volume, warp_image(moving_v.data.to(device), coords),
                                fixed_v.affine, paths["warped"], header=hdr, dtype=np.float32))
        if labels_v is not None:
            warped = warp_labels(labels_v.data.to(device), coords, label_interpolation)
            jobs.append(pool.submit(save_volume, warped.to(torch.int32), fixed_v.affine,
                                    paths["warped_labels"], header=hdr, dtype=np.int32))
        detj = jacobian_determinant_map(displacement, fixed_v.affine)
        jobs.append(pool.submit(save_volume, detj, fixed_v.affine, paths["jacobian"],
                                header=hdr, dtype=np.float32))
        for job in jobs:
            job.result()
    brain = fixed_v.data.to(detj.device) > 0
    return round(folding_percent(detj, brain), 5)


def register_files(fixed: str | Path, moving: str | Path, out_prefix: str | Path,
                   params: RegistrationParams, moving_labels: str | Path | None = None,
                   seed: int = 0, device: torch.device | str = "cpu",
                   progress: bool = True, inverse: bool = False) -> dict[str, Any]:
    """Validate inputs, register, write warped image/labels, warp, det J and summary JSON.

    All inputs are read and checked before any output is written; each output is written
    atomically, the summary last, so a present summary means a complete result.
    """
    start = time.perf_counter()
    device = torch.device(device)
    fixed_v, moving_v, labels_v = load_pair(fixed, moving, moving_labels)
    result = register(fixed_v, moving_v, params, seed=seed, device=device, progress=progress,
                      inverse=inverse)
    paths = output_paths(out_prefix, labels_v is not None, inverse)
    t0 = time.perf_counter()
    folding = write_outputs(fixed_v, moving_v, labels_v, result.displacement, paths,
                            params.label_interpolation, device)
    if result.inverse_displacement is not None:
        save_warp(result.inverse_displacement, fixed_v.affine, paths["inverse_warp"],
                  header=fixed_v.header)
    summary = {
        "fixed": str(fixed), "moving": str(moving),
        "moving_labels": None if moving_labels is None else str(moving_labels),
        "outputs": {k: str(v) for k, v in paths.items()},
        "mode": params.mode, "sampler": params.sampler, "seed": seed,
        "device": str(device), "threads": torch.get_num_threads(),
        "parameters": params.to_dict(),
        "seconds": round(time.perf_counter() - start, 3),
        "seconds_by_stage": {**{k: round(v, 3) for k, v in result.seconds.items()},
                             "write_outputs": round(time.perf_counter() - t0, 3)},
        "seconds_by_part": {phase: {k: round(v, 3) for k, v in log.seconds.items()}
                            for phase, log in result.phases.items()},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_device_mb": peak_device_mb(device),
        "folding_percent_foreground": folding,
        "loss_curve": {phase: _thin(log.loss) for phase, log in result.phases.items()},
        "iterations_run": {phase: len(log.loss) for phase, log in result.phases.items()},
        "versions": versions(),
    }
    write_json(summary, paths["summary"])
    return summary
