"""One NIR registration: fit the field(s) to a pair, then evaluate them on the full fixed grid.

The hybrid scheme fits a coarse field NF1 with the downsize sampler, freezes it, and fits a
residual field NF2 composed on its fixed side, phi = phi_1 o phi_2 (as ANTs stacks stages).
``field: lattice`` (:class:`~nir.engine.fields.NeuralField`) resamples the moving image once
through phi_1 onto the fixed grid for NF2; ``field: continuous``
(:class:`~nir.engine.continuous.ContinuousField`, the paper's NIR) evaluates NF1 at NF2's
output in every iteration instead. With ``refine_iterations`` (lattice field) a third residual
field NF3 is fitted the same way on a finer grid after NF2: phi = phi_1 o phi_2 o phi_3.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from nir.engine.continuous import ContinuousField
from nir.engine.continuous_step import ContinuousStep
from nir.engine.corner_table import CornerTable
from nir.engine.fields import NeuralField
from nir.engine.fit import FitContext, FitDivergedError, FitLog, LatticeStep, fit
from nir.engine.inference import FieldModel, dense_deformation, field_to_world_displacement
from nir.engine.lattice import Lattice
from nir.engine.params import RegistrationParams
from nir.engine.samplers import sampler_class
from nir.engine.samplers._base import SamplerSetup, same_extent, voxel_strides
from nir.engine.tracking import ConvergenceTracker, Monitor
from nir.errors import NirInputError
from nir.spatial.frame import FieldFrame
from nir.spatial.geometry import norm_to_voxel, sample
from nir.spatial.intensity import percentile_scale
from nir.spatial.io import Volume, same_grid
from nir.spatial.smoothing import gaussian_blur

FOREGROUND_FRACTION = 0.05


@dataclass
class RegistrationResult:
    """The fitted deformation as a world-mm (RAS) displacement on the fixed grid, plus logs."""

    displacement: torch.Tensor
    phases: dict[str, FitLog] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    inverse_displacement: torch.Tensor | None = None
    fields: list[FieldModel] = field(default_factory=list)  # fitted, in fitting order


def normalise_intensity(image: torch.Tensor) -> torch.Tensor:
    """Scale so the 99.5th percentile of the non-zero voxels is 1; clip to [0, 1.5]."""
    data = image.detach().cpu().numpy()
    scaled = percentile_scale(data, data > 0, high=99.5, ceiling=1.5)
    return torch.from_numpy(scaled).to(image.device)


def foreground_box(mask: torch.Tensor, spacing: tuple[float, float, float],
                   margin_mm: float) -> tuple[slice, slice, slice]:
    """The bounding box of ``mask`` grown by ``margin_mm`` on every side (whole voxels)."""
    if not bool(mask.any()):
        return tuple(slice(0, n) for n in mask.shape)  # type: ignore[return-value]
    box = []
    for axis, (n, s) in enumerate(zip(mask.shape, spacing, strict=True)):
        other = tuple(d for d in range(3) if d != axis)
        hit = mask.any(dim=other[1]).any(dim=other[0]).nonzero()[:, 0]
        grow = math.ceil(margin_mm / s)
        box.append(slice(max(0, int(hit[0]) - grow), min(n, int(hit[-1]) + grow + 1)))
    return tuple(box)  # type: ignore[return-value]


@dataclass
class _Pair:
    """A normalised pair in the field frame of the fixed image."""

    frame: FieldFrame
    fixed: torch.Tensor
    moving: torch.Tensor
    mask: torch.Tensor
    box: tuple[slice, slice, slice]
    moving_norm_from_field: torch.Tensor
    field_from_voxel: torch.Tensor
    device: torch.device

    def box_corners(self) -> tuple[np.ndarray, np.ndarray]:
        """Field-unit corners of the sampled box."""
        m = self.frame.field_from_voxel
        low = np.array([m[a, a] * b.start + m[a, 3] for a, b in enumerate(self.box)])
        high = np.array([m[a, a] * (b.stop - 1) + m[a, 3] for a, b in enumerate(self.box)])
        return low, high

    def blurred(self, image: torch.Tensor, sigma_mm: float) -> torch.Tensor:
        return gaussian_blur(image, [sigma_mm / s for s in self.frame.spacing])


def _pair(fixed: Volume, moving: Volume, params: RegistrationParams,
          device: torch.device) -> _Pair:
    frame = FieldFrame.from_affine(fixed.shape, fixed.affine)
    f_img = normalise_intensity(fixed.data).to(device)
    m_img = normalise_intensity(moving.data).to(device)
    mask = f_img > FOREGROUND_FRACTION
    as_t = lambda m: torch.as_tensor(m, dtype=torch.float32, device=device)  # noqa: E731
    return _Pair(frame, f_img, m_img, mask, foreground_box(mask, frame.spacing,
                                                           params.crop_margin_mm),
                 as_t(frame.moving_norm_from_field(moving.shape, moving.affine)),
                 as_t(frame.field_from_voxel), device)


@dataclass(frozen=True)
class _Phase:
    """One fitting phase: its field's lattice and encoding, its sampler and its loss."""

    name: str
    field_name: str  # NF1, NF2, NF3: in progress output
    sampler: str  # downsize | minipatch | random
    spacing_mm: float  # downsize step
    blur: float  # Gaussian sigma as a fraction of the step
    lattice_mm: float
    fine: bool  # NF2 architecture (fine_encoding, fine_hidden)
    iterations: int
    window: int
    smoothness: float  # diffusion weight of the phase's loss
    fraction: float = 1.0  # of the downsize grid per batch


def phases(params: RegistrationParams) -> list[_Phase]:
    """The phases ``params`` asks for, in fitting order."""
    if params.sampler == "hybrid":
        coarse = _Phase("coarse", "NF1", "downsize", params.downsize_spacing_mm,
                        params.coarse_blur, params.lattice_mm, False, params.coarse_iterations,
                        params.coarse_ncc_window, params.smoothness_weight)
        fine = _Phase("fine", "NF2", params.fine_sampler, params.fine_spacing_mm,
                      params.fine_blur, params.fine_lattice_mm, True, params.iterations,
                      params.ncc_window, params.smoothness_weight, params.fine_batch_fraction)
        if params.refine_iterations == 0:
            return [coarse, fine]
        return [coarse, fine, _Phase("refine", "NF3", "downsize", params.refine_spacing_mm,
                                     params.fine_blur, params.refine_lattice_mm, True,
                                     params.refine_iterations, params.refine_ncc_window,
                                     params.refine_smoothness_weight,
                                     params.refine_batch_fraction)]
    return [_Phase("fine", "NF1", params.sampler, params.downsize_spacing_mm, params.coarse_blur,
                   params.lattice_mm, False, params.iterations, params.ncc_window,
                   params.smoothness_weight)]


def _fit_phase(phase: _Phase, pair: _Pair, moving: torch.Tensor, norm_from_field: torch.Tensor,
               params: RegistrationParams, generator: torch.Generator, progress: bool,
               frozen: list[FieldModel],
               monitor: Monitor | None = None) -> tuple[FieldModel, FitLog]:
    """Build the phase's field and sampler, and fit the field to (fixed, ``moving``).

    A continuous field is composed on the ``frozen`` fields of the earlier phases; a lattice
    field's ``moving`` image has already been resampled through them.
    """
    kind = sampler_class(phase.sampler)
    sigma_mm, strides = 0.0, (1, 1, 1)
    if kind.strided:  # a grid every spacing_mm, on images blurred by a fraction of it
        strides = voxel_strides(phase.spacing_mm, pair.frame.spacing)
    steps = tuple(st * sp for st, sp in zip(strides, pair.frame.spacing, strict=True))
    if kind.strided:
        sigma_mm = phase.blur * max(steps)
    window = same_extent(phase.window, steps, odd=True)
    sampler = kind.from_setup(SamplerSetup(
        pair.blurred(pair.fixed, sigma_mm), pair.mask, pair.frame.spacing, pair.box, strides,
        window, phase.fraction, params, generator))
    voxel_from_norm = torch.as_tensor(norm_to_voxel(tuple(moving.shape)), dtype=torch.float32,
                                      device=pair.device)
    ctx = FitContext(CornerTable(pair.blurred(moving, sigma_mm)),
                     voxel_from_norm @ norm_from_field, pair.field_from_voxel, window)
    model: FieldModel
    if params.field == "continuous":
        model = ContinuousField(params, generator, fine=phase.fine).to(pair.device)
        step = ContinuousStep(model, frozen, ctx, sampler, params)
    else:
        low, high = pair.box_corners()
        lattice = Lattice.covering(low, high, phase.lattice_mm / pair.frame.radius_mm)
        model = NeuralField(params, lattice, generator, fine=phase.fine).to(pair.device)
        step = LatticeStep(model, ctx, sampler,
                           replace(params, smoothness_weight=phase.smoothness))
    label = f"{phase.field_name} {phase.sampler}"
    log = fit(model, sampler, step, params, phase.iterations, label, progress, monitor)
    if kind.strided:  # spacing_mm in whole voxels: the step actually used
        log.step_mm = steps
    model.requires_grad_(False)
    return model, log


def register(fixed: Volume, moving: Volume, params: RegistrationParams, seed: int = 0,
             device: torch.device | str = "cpu", progress: bool = True,
             inverse: bool = False,
             tracker: ConvergenceTracker | None = None) -> RegistrationResult:
    """Fit NIR to (fixed, moving) and return the dense displacement, fixed -> moving.

    With ``inverse`` (velocity mode, fixed and moving on the same grid) the inverse map,
    obtained by integrating -v, is returned too, as a displacement on that grid.
    A ``tracker`` records the deformation's quality during the fit (convergence records).
    """
    if inverse and params.mode != "velocity":
        raise NirInputError(None, "an inverse warp needs --mode velocity")
    if inverse and not same_grid(fixed.shape, fixed.affine, moving.shape, moving.affine):
        raise NirInputError(moving.path, "an inverse warp needs the moving image on the fixed "
                                         "grid (run nir preprocess on both first)")
    device = torch.device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    pair = _pair(fixed, moving, params, device)
    result = RegistrationResult(displacement=torch.empty(0))
    start = time.perf_counter()
    fitted: list[FieldModel] = []
    moving_now, norm_now = pair.moving, pair.moving_norm_from_field
    done = 0  # iterations of the phases fitted so far
    if tracker is not None:
        tracker.start()
    for phase in phases(params):
        if fitted and params.field == "lattice":  # resample the moving image once through
            #                                       the fields fitted so far
            phi = dense_deformation(fitted, pair.frame, device)
            moving_now = sample(pair.moving[None], phi,
                                matrix=pair.moving_norm_from_field)[0]
            norm_now = torch.as_tensor(pair.frame.norm_from_field, dtype=torch.float32,
                                       device=device)
        monitor = None if tracker is None else tracker.monitor(list(fitted), pair.frame,
                                                                phase.name, done)
        model, log = _fit_phase(phase, pair, moving_now, norm_now, params, generator, progress,
                                fitted, monitor)
        fitted.append(model)
        result.phases[phase.name] = log
        done += len(log.loss)
        if tracker is not None:
            tracker.finish(fitted, pair.frame, done, phase.name)
    result.seconds["fit"] = time.perf_counter() - start
    if tracker is not None:  # scoring is not fitting
        result.seconds["fit"] -= tracker.overhead
        result.seconds["tracking"] = tracker.overhead
    start = time.perf_counter()
    phi = dense_deformation(fitted, pair.frame, device)
    result.displacement = field_to_world_displacement(phi, pair.frame)
    if not bool(torch.isfinite(result.displacement).all()):
        raise FitDivergedError("the fitted field is not finite (NaN or Inf) on the fixed grid")
    if inverse:
        phi_inv = dense_deformation(fitted, pair.frame, device, inverse=True)
        result.inverse_displacement = field_to_world_displacement(phi_inv, pair.frame)
    result.seconds["inference"] = time.perf_counter() - start
    result.fields = fitted
    return result

