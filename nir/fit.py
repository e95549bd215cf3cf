"""Stochastic-gradient fitting of a neural field to one image pair."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from nir.fields import NeuralField
from nir.geometry import apply_matrix, sample
from nir.losses import (
    det3,
    diffusion_energy,
    folding_penalty,
    global_ncc,
    jacobian_columns,
    local_ncc,
)
from nir.params import RegistrationParams
from nir.samplers import Batch


@dataclass
class FitContext:
    """What every iteration needs: the moving image and the fixed-voxel/field/moving maps."""

    moving: torch.Tensor  # (1, I, J, K) moving intensities (possibly blurred)
    field_from_voxel: torch.Tensor  # 4x4
    moving_norm_from_field: torch.Tensor  # 4x4
    field_per_voxel: torch.Tensor  # (3,) field units per fixed voxel along i, j, k


@dataclass
class FitLog:
    """Loss curve and the time spent in each part of an iteration (seconds)."""

    loss: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {
        "sampling": 0.0, "field": 0.0, "interpolation": 0.0, "loss": 0.0, "backward": 0.0})

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[part] += time.perf_counter() - start


def _resize(grid: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Trilinear resize of (B, D, H, W, C) values on a regular grid, end points kept."""
    out = F.interpolate(grid.permute(0, 4, 1, 2, 3), size=size, mode="trilinear",
                        align_corners=True)
    return out.permute(0, 2, 3, 4, 1)


def coarser_size(shape: tuple[int, ...], stride: int) -> tuple[int, ...]:
    """Samples per axis of a sub-lattice about ``stride`` samples apart, spanning end to end."""
    return tuple((n - 2) // stride + 2 if n > 1 else 1 for n in shape)


def evaluate_on_batch(model: nn.Module, x: torch.Tensor, batch: Batch, ctx: FitContext,
                      stride: int) -> torch.Tensor:
    """phi at grid-structured field points ``x`` (B, D, H, W, 3).

    The field is evaluated on a sub-lattice about ``stride`` samples apart and its
    displacement interpolated trilinearly to every sample (``stride=1``: every sample).  The
    Fourier scale band-limits the field, so this costs little accuracy and saves about
    ``stride**3`` network evaluations.
    """
    size = coarser_size(tuple(x.shape[1:4]), stride)
    xs = x if size == tuple(x.shape[1:4]) else _resize(x, size)
    if batch.lattice_norm_from_voxel is not None and isinstance(model, NeuralField):
        # the sub-lattice spans the same box, so its normalised coordinates are the lattice's
        norm_from_field = batch.lattice_norm_from_voxel @ torch.linalg.inv(ctx.field_from_voxel)
        phis = model.integrate_on_lattice(xs[0], norm_from_field)[None]
    else:
        phis = model(xs)
    if xs is x:
        return phis
    return x + _resize(phis - xs, tuple(x.shape[1:4]))


def iteration_loss(model: nn.Module, batch: Batch, ctx: FitContext, params: RegistrationParams,
                   log: FitLog) -> torch.Tensor:
    """Similarity + folding penalty on one batch of samples."""
    with log.timed("field"):
        x = apply_matrix(ctx.field_from_voxel, batch.points)
        phi = evaluate_on_batch(model, x, batch, ctx, params.field_stride)
    with log.timed("interpolation"):
        warped = sample(ctx.moving, apply_matrix(ctx.moving_norm_from_field, phi))
        warped = warped.movedim(0, 1)
    with log.timed("loss"):
        if batch.use_local_ncc:
            sim = local_ncc(batch.fixed, warped, params.ncc_window)
        else:
            sim = global_ncc(batch.fixed, warped)
        columns = jacobian_columns(phi, ctx.field_per_voxel * batch.step_vox)
        loss = sim + params.folding_weight * folding_penalty(det3(*columns), params.volume_weight)
        if params.smoothness_weight:
            loss = loss + params.smoothness_weight * diffusion_energy(*columns)
        return loss


def fit(model: nn.Module, sampler: object, ctx: FitContext, params: RegistrationParams,
        iterations: int, description: str, progress: bool = True) -> FitLog:
    """Adam with exponential learning-rate decay, optional plateau stop; returns the log.

    The plateau test watches an exponential moving average (factor 0.9) of the loss.
    """
    log = FitLog()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if iterations == 0 or not trainable:
        return log
    optimiser = torch.optim.Adam(trainable, lr=params.lr)
    gamma = params.lr_final_ratio ** (1.0 / iterations)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma)
    best, since_best, smooth = float("inf"), 0, None
    bar = tqdm(range(iterations), desc=description, disable=not progress, unit="it",
               mininterval=1.0, dynamic_ncols=True)
    for _ in bar:
        with log.timed("sampling"):
            batch = sampler.sample()
        loss = iteration_loss(model, batch, ctx, params, log)
        with log.timed("backward"):
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
        value = float(loss.detach())
        log.loss.append(value)
        bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        smooth = value if smooth is None else 0.9 * smooth + 0.1 * value
        if params.plateau_patience:
            if smooth < best - params.plateau_tolerance:
                best, since_best = smooth, 0
            else:
                since_best += 1
                if since_best >= params.plateau_patience:
                    break
    bar.close()
    return log
