"""Stochastic-gradient fitting of one neural field to one image pair."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from nir.engine.corner_table import CornerTable
from nir.engine.fields import NeuralField
from nir.engine.lattice import Region
from nir.engine.losses import (
    fixed_window_sums,
    global_ncc,
    lattice_regularity,
    local_ncc,
    ncc_width,
)
from nir.engine.params import RegistrationParams
from nir.engine.samplers._base import Batch
from nir.spatial.geometry import transform_points

REGION_MARGIN_NODES = 2  # lattice nodes around a grid batch over which its field is evaluated
FUSED_ADAM_DEVICES = ("cpu", "cuda")  # where torch's fused Adam kernel runs


class FitDivergedError(RuntimeError):
    """The loss of a fit became NaN or infinite: the field cannot be trusted."""


@dataclass
class FitContext:
    """What every iteration of a phase needs besides the field and the sampler.

    ``moving`` is sampled at ``moving_voxel_from_field`` (4x4) applied to phi(x).
    ``field_from_voxel`` is the fixed grid's diagonal voxel -> field map.
    """

    moving: CornerTable  # moving intensities (possibly blurred or pre-warped)
    moving_voxel_from_field: torch.Tensor  # 4x4, field -> moving voxel (i, j, k)
    field_from_voxel: torch.Tensor  # 4x4, diagonal
    window: tuple[int, int, int]  # local NCC window side along each axis, samples


@dataclass
class FitLog:
    """Loss curve, the time spent in each part of an iteration (seconds) and the sample
    grid's step."""

    loss: list[float] = field(default_factory=list)
    step_mm: tuple[float, float, float] | None = None  # a strided sampler's grid step per axis
    seconds: dict[str, float] = field(default_factory=lambda: {
        "sampling": 0.0, "field": 0.0, "interpolation": 0.0, "loss": 0.0, "backward": 0.0})

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[part] += time.perf_counter() - start


class Similarity:
    """Local NCC (or global NCC for random stencils).

    For batches that are parts of a grid the sampler revisits (``batch.key``), the fixed
    image's window sums are computed once for the whole grid and cropped.
    """

    def __init__(self, window: tuple[int, int, int], sampler: object) -> None:
        self.window = window
        self.sampler = sampler
        self._sums: dict[tuple[int, ...], torch.Tensor] = {}

    def __call__(self, batch: Batch, warped: torch.Tensor) -> torch.Tensor:
        if not batch.use_local_ncc:
            return global_ncc(batch.fixed, warped)
        width = ncc_width(self.window, batch.fixed)
        if batch.key is None or batch.crop is None:
            return local_ncc(batch.fixed, warped, self.window)
        sums = self._sums.get(batch.key)
        if sums is None:
            sums = fixed_window_sums(self.sampler.full_grid(batch.key)[1], width)
            self._sums[batch.key] = sums
        windows = tuple(slice(c.start, c.stop - w + 1) for c, w in zip(batch.crop, width,
                                                                        strict=True))
        return local_ncc(batch.fixed, warped, self.window, sums[(..., *windows)])


def batch_region(model: NeuralField, batch: Batch, ctx: FitContext) -> Region | None:
    """The lattice nodes a grid batch needs (its box plus a margin), or None for all."""
    if batch.axes is None or batch.crop is None:
        return None
    m = ctx.field_from_voxel
    low = torch.stack([ax[0] * m[a, a] + m[a, 3] for a, ax in enumerate(batch.axes)])
    high = torch.stack([ax[-1] * m[a, a] + m[a, 3] for a, ax in enumerate(batch.axes)])
    return model.lattice.region(low, high, REGION_MARGIN_NODES)


def warped_samples(model: NeuralField, displacement: torch.Tensor, batch: Batch,
                   ctx: FitContext, region: Region | None = None) -> torch.Tensor:
    """The moving image at phi(x) for every sample x of ``batch``, (B, 1, D, H, W).

    ``displacement`` holds the field's node displacements on ``region`` (default: all).
    """
    scale = torch.diagonal(ctx.field_from_voxel)[:3]
    shift = ctx.field_from_voxel[:3, 3]
    m = ctx.moving_voxel_from_field
    if batch.axes is None:
        phi = model.at_points(displacement, batch.points * scale + shift, region)
        return ctx.moving(transform_points(phi, m[:3, :3], m[:3, 3]).movedim(-1, 0))[:, None]
    axes = [ax * scale[a] + shift[a] for a, ax in enumerate(batch.axes)]
    u = model.at_grid(displacement, axes, region)  # (3, D, H, W)
    # moving voxel coordinates M (x + u) = (M x + t) + M u, M x summed axis by axis
    size = u.shape[1:]
    coords = (m[:3, :3] @ u.reshape(3, -1)).reshape(3, *size) + m[:3, 3].view(3, 1, 1, 1)
    for a, axis in enumerate(axes):
        shape = [1, 1, 1, 1]
        shape[a + 1] = -1
        coords = coords + m[:3, a].view(3, 1, 1, 1) * axis.view(shape)
    return ctx.moving(coords)[None, None]


def regularity(displacement: torch.Tensor, spacing: float,
               params: RegistrationParams) -> torch.Tensor:
    """Folding (and volume) penalty plus diffusion energy of the field on its lattice."""
    return lattice_regularity(displacement, spacing, params.folding_weight,
                              params.volume_weight, params.smoothness_weight)


# One iteration's loss for a batch; records its parts' seconds in the log.
Step = Callable[[Batch, FitLog], torch.Tensor]


class LatticeStep:
    """The loss of a :class:`NeuralField` on a batch: its lattice (or the batch's region of
    it) is evaluated, read at the samples, and the regularity taken on the lattice."""

    def __init__(self, model: NeuralField, ctx: FitContext, sampler: object,
                 params: RegistrationParams) -> None:
        self.model = model
        self.ctx = ctx
        self.similarity = Similarity(ctx.window, sampler)
        self.params = params

    def __call__(self, batch: Batch, log: FitLog) -> torch.Tensor:
        with log.timed("field"):
            region = batch_region(self.model, batch, self.ctx)
            displacement = self.model.node_displacement(region=region)
        with log.timed("interpolation"):
            warped = warped_samples(self.model, displacement, batch, self.ctx, region)
        with log.timed("loss"):
            return self.similarity(batch, warped) + regularity(
                displacement, self.model.lattice.spacing, self.params)


def fit(model: torch.nn.Module, sampler: object, step: Step, params: RegistrationParams,
        iterations: int, description: str, progress: bool = True,
        monitor: Callable[[torch.nn.Module, int], None] | None = None) -> FitLog:
    """Adam on ``model``'s trainable parameters with exponential learning-rate decay and an
    optional plateau stop; ``step(batch, log)`` gives each batch's loss.  Returns the log.

    The plateau test watches an exponential moving average (factor 0.9) of the loss.
    ``monitor(model, iterations_done)`` runs after every step (convergence tracking).
    """
    log = FitLog()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if iterations == 0 or not trainable:
        return log
    # the fused kernel: one pass over every parameter per step (the CPU default goes tensor
    # by tensor, op by op: 7 % of a default fit's CPU time in a profile at one thread)
    optimiser = torch.optim.Adam(trainable, lr=params.lr,
                                 fused=trainable[0].device.type in FUSED_ADAM_DEVICES)
    gamma = params.lr_final_ratio ** (1.0 / iterations)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma)
    best, since_best, smooth = float("inf"), 0, None
    bar = tqdm(range(iterations), desc=description, disable=not progress, unit="it",
               mininterval=1.0, dynamic_ncols=True)
    for _ in bar:
        with log.timed("sampling"):
            batch = sampler.sample()
        loss = step(batch, log)
        with log.timed("backward"):
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            bar.close()
            raise FitDivergedError(f"the fit diverged: loss {value} at iteration "
                                   f"{len(log.loss) + 1} of {description} (try a lower lr)")
        log.loss.append(value)
        if monitor is not None:
            monitor(model, len(log.loss))
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
