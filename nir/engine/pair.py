"""Register one pair of files and write the ANTs-style outputs under a prefix."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nir.engine.fit import FitDivergedError
from nir.engine.params import RegistrationParams
from nir.engine.register import register
from nir.engine.tracking import ConvergenceTracker, LabelSelector, every_label, tracker_for
from nir.errors import NirRunError
from nir.spatial.displacement import int16_step, save_warp
from nir.spatial.io import Volume, atomic_files, load_labels, load_volume, save_volume
from nir.spatial.jacobian import jacobian_determinant_map
from nir.spatial.overlap import brain_mask, folding_percent
from nir.spatial.warp import moving_coordinates, warp_image, warp_labels
from nir.summary import peak_device_mb, peak_rss_mb, versions, write_json

LOSS_CURVE_POINTS = 200


def output_paths(prefix: str | Path, with_labels: bool, with_inverse: bool = False,
                 with_panels: bool = False) -> dict[str, Path]:
    """The files ``nir register`` writes for ``prefix`` (``with_panels``: the convergence
    records' slices, :mod:`nir.engine.panels`)."""
    p = str(prefix)
    paths = {"warped": Path(f"{p}_warped.nii.gz"), "warp": Path(f"{p}_warp.nii.gz"),
             "jacobian": Path(f"{p}_jacobian.nii.gz"), "summary": Path(f"{p}_summary.json")}
    if with_labels:
        paths["warped_labels"] = Path(f"{p}_warped_labels.nii.gz")
    if with_inverse:
        paths["inverse_warp"] = Path(f"{p}_inverse_warp.nii.gz")
    if with_panels:
        paths["convergence"] = Path(f"{p}_convergence.npz")
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


def brain_folding(detj: torch.Tensor, fixed_v: Volume,
                  fixed_labels_v: Volume | None) -> dict[str, Any]:
    """``folding_percent`` (% det J <= 0) in the brain, and ``folding_region`` saying which:
    the fixed labels > 0 when given, as ``nir evaluate`` counts it, else the fixed image > 0."""
    labels = None if fixed_labels_v is None else fixed_labels_v.data.to(detj.device)
    mask, region = brain_mask(labels, fixed_v.data.to(detj.device))
    return {"folding_percent": round(folding_percent(detj, mask), 5), "folding_region": region}


def warp_storage(displacement: torch.Tensor, dtype: str) -> dict[str, Any]:
    """``warp_dtype`` and the largest rounding error, mm, that storing the warp in it adds."""
    error = int16_step(displacement) / 2 if dtype == "int16" else 0.0
    return {"warp_dtype": dtype, "warp_max_error_mm": error}


@contextmanager
def _writer_pool() -> Iterator[ThreadPoolExecutor]:
    """Compression threads; on an error (or a signal) queued writes are dropped and the running
    ones awaited, so nothing writes into a temporary file after it has been removed."""
    pool = ThreadPoolExecutor(max_workers=torch.get_num_threads())
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def write_outputs(fixed_v: Volume, moving_v: Volume, labels_v: Volume | None,
                  displacement: torch.Tensor, paths: dict[str, Path],
                  label_interpolation: str = "onehot", device: torch.device | str = "cpu",
                  warp_dtype: str = "float32",
                  inverse_displacement: torch.Tensor | None = None,
                  tracker: ConvergenceTracker | None = None) -> torch.Tensor:
    """Write the warped image (and labels), warp (and inverse warp) and det J map of a
    fixed-grid displacement (and the ``tracker``'s slices when ``paths`` has
    ``convergence``); return the det J map.

    ``displacement`` is (I, J, K, 3) in RAS mm on the fixed grid.  Files are compressed in as
    many background threads as torch uses (zlib releases the GIL), overlapping the
    resampling of the next output.  They appear together once all are written
    (:func:`nir.spatial.io.atomic_files`); after an error or a signal none does, and no
    temporary file is left.
    """
    device = torch.device(device)
    hdr, affine = fixed_v.header, fixed_v.affine
    kinds = [kind for kind in paths if kind != "summary"]
    warp = partial(save_warp, affine=affine, header=hdr, dtype=warp_dtype, atomic=False)
    volume = partial(save_volume, affine=affine, header=hdr, atomic=False)
    with atomic_files([paths[kind] for kind in kinds]) as temps, _writer_pool() as pool:
        tmp = dict(zip(kinds, temps, strict=True))
        jobs = [pool.submit(warp, displacement, path=tmp["warp"])]
        if inverse_displacement is not None:
            jobs.append(pool.submit(warp, inverse_displacement, path=tmp["inverse_warp"]))
        if tracker is not None and "convergence" in tmp:
            jobs.append(pool.submit(tracker.save_panels, tmp["convergence"]))
        coords = moving_coordinates(displacement, affine, moving_v.shape, moving_v.affine)
        jobs.append(pool.submit(volume, warp_image(moving_v.data.to(device), coords),
                                path=tmp["warped"], dtype=np.float32))
        if labels_v is not None:
            warped = warp_labels(labels_v.data.to(device), coords, label_interpolation)
            jobs.append(pool.submit(volume, warped.to(torch.int32), path=tmp["warped_labels"],
                                    dtype=np.int32))
        detj = jacobian_determinant_map(displacement, affine)
        jobs.append(pool.submit(volume, detj, path=tmp["jacobian"], dtype=np.float32))
        for job in jobs:
            job.result()
    return detj


def register_files(fixed: str | Path, moving: str | Path, out_prefix: str | Path,
                   params: RegistrationParams, moving_labels: str | Path | None = None,
                   seed: int = 0, device: torch.device | str = "cpu",
                   progress: bool = True, inverse: bool = False,
                   fixed_labels: str | Path | None = None,
                   select_labels: LabelSelector = every_label,
                   warp_dtype: str = "float32") -> dict[str, Any]:
    """Validate inputs, register, write warped image/labels, warp, det J and summary JSON.

    All inputs are read and checked before any output is written.  A summary left by an
    earlier run is then removed, the outputs appear together (:func:`write_outputs`) and the
    summary last, so a present summary always means a complete result of its own run.
    ``fixed_labels`` sets the brain that folding is counted in (:func:`brain_folding`).
    ``params.track_every`` (with ``fixed_labels`` and ``moving_labels``; ``select_labels``
    picks the scored labels among those present) adds convergence records; ``seconds`` then
    leaves out their cost.
    """
    start = time.perf_counter()
    device = torch.device(device)
    fixed_v, moving_v, labels_v = load_pair(fixed, moving, moving_labels)
    fixed_labels_v = load_labels(fixed_labels, like=fixed_v) if fixed_labels else None
    tracker = tracker_for(params, fixed_labels_v, labels_v, select_labels, device,
                          images=(fixed_v, moving_v))
    paths = output_paths(out_prefix, labels_v is not None, inverse, tracker is not None)
    paths["summary"].unlink(missing_ok=True)  # no stale "complete" marker beside new outputs
    try:
        result = register(fixed_v, moving_v, params, seed=seed, device=device,
                          progress=progress, inverse=inverse, tracker=tracker)
    except FitDivergedError as exc:
        raise NirRunError(f"registering {moving} onto {fixed}: {exc}; nothing was written"
                          ) from None
    t0 = time.perf_counter()
    detj = write_outputs(fixed_v, moving_v, labels_v, result.displacement, paths,
                         params.label_interpolation, device, warp_dtype,
                         result.inverse_displacement, tracker)
    summary = {
        "fixed": str(fixed), "moving": str(moving),
        "moving_labels": None if moving_labels is None else str(moving_labels),
        "fixed_labels": None if fixed_labels is None else str(fixed_labels),
        "outputs": {k: str(v) for k, v in paths.items()},
        "field": params.field, "mode": params.mode, "sampler": params.sampler, "seed": seed,
        "device": str(device), "threads": torch.get_num_threads(),
        "parameters": params.to_dict(),
        "seconds": round(time.perf_counter() - start - result.seconds.get("tracking", 0.0), 3),
        "seconds_by_stage": {**{k: round(v, 3) for k, v in result.seconds.items()},
                             "write_outputs": round(time.perf_counter() - t0, 3)},
        "seconds_by_part": {phase: {k: round(v, 3) for k, v in log.seconds.items()}
                            for phase, log in result.phases.items()},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_device_mb": peak_device_mb(device),
        **brain_folding(detj, fixed_v, fixed_labels_v),
        **warp_storage(result.displacement, warp_dtype),
        "loss_curve": {phase: _thin(log.loss) for phase, log in result.phases.items()},
        "iterations_run": {phase: len(log.loss) for phase, log in result.phases.items()},
        "sample_step_mm": {phase: None if log.step_mm is None else [round(s, 4)
                                                                   for s in log.step_mm]
                           for phase, log in result.phases.items()},
        "versions": versions(),
    }
    if tracker is not None:
        summary["convergence"] = tracker.to_dict()
    write_json(summary, paths["summary"])
    return summary
