"""One NIR registration: fit the field(s) to a pair, then evaluate it on the full fixed grid."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from nir.errors import NirInputError
from nir.fields import ComposedField, DenseField, NeuralField
from nir.fit import FitContext, FitLog, fit
from nir.frame import FieldFrame
from nir.inference import dense_deformation, field_to_world_displacement
from nir.io import Volume, same_grid
from nir.params import RegistrationParams
from nir.samplers import DownsizeSampler, MinipatchSampler, RandomSampler
from nir.smoothing import gaussian_blur

FOREGROUND_FRACTION = 0.05


@dataclass
class RegistrationResult:
    """The fitted deformation as a world-mm (RAS) displacement on the fixed grid, plus logs."""

    displacement: torch.Tensor
    phases: dict[str, FitLog] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    inverse_displacement: torch.Tensor | None = None


def normalise_intensity(image: torch.Tensor) -> torch.Tensor:
    """Scale so the 99.5th percentile of the non-zero voxels is 1; clip to [0, 1.5]."""
    values = image[image > 0]
    if values.numel() > 16_000_000:
        values = values[:: values.numel() // 16_000_000 + 1]
    top = torch.quantile(values.float(), 0.995) if values.numel() else image.abs().max()
    return (image / top.clamp_min(1e-6)).clamp(0.0, 1.5)


def _context(moving: torch.Tensor, frame: FieldFrame, moving_volume: Volume,
             device: torch.device) -> FitContext:
    as_t = lambda m: torch.as_tensor(m, dtype=torch.float32, device=device)  # noqa: E731
    return FitContext(
        moving=moving[None].to(device),
        field_from_voxel=as_t(frame.field_from_voxel),
        moving_norm_from_field=as_t(frame.moving_norm_from_field(moving_volume.shape,
                                                                 moving_volume.affine)),
        field_per_voxel=frame.field_step(1.0).to(device),
    )


def _downsize_phase(f_img: torch.Tensor, m_img: torch.Tensor, spacing_mm: float,
                    frame: FieldFrame, moving: Volume, device: torch.device,
                    generator: torch.Generator) -> tuple[DownsizeSampler, FitContext]:
    """A strided-grid sampler about ``spacing_mm`` apart and its context, both images blurred
    to that scale (Gaussian, sigma half the stride)."""
    stride = max(1, round(spacing_mm / min(frame.spacing)))
    sigma = 0.5 * stride if stride > 1 else 0.0
    sampler = DownsizeSampler(gaussian_blur(f_img, sigma), stride, generator)
    return sampler, _context(gaussian_blur(m_img, sigma), frame, moving, device)


class _Inverse(nn.Module):
    """The inverse map of a velocity field (or composition of them) as a module."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.inverse(x)


def register(fixed: Volume, moving: Volume, params: RegistrationParams, seed: int = 0,
             device: torch.device | str = "cpu", progress: bool = True,
             inverse: bool = False) -> RegistrationResult:
    """Fit NIR to (fixed, moving) and return the dense displacement, fixed -> moving.

    With ``inverse`` (velocity mode, fixed and moving on the same grid) the inverse map,
    obtained by integrating -v, is returned too, as a displacement on that grid.
    """
    if inverse and params.mode != "velocity":
        raise NirInputError(None, "an inverse warp needs --mode velocity")
    if inverse and not same_grid(fixed.shape, fixed.affine, moving.shape, moving.affine):
        raise NirInputError(moving.path, "an inverse warp needs the moving image on the fixed "
                                         "grid (run nir preprocess on both first)")
    device = torch.device(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    frame = FieldFrame.from_affine(fixed.shape, fixed.affine)
    f_img = normalise_intensity(fixed.data).to(device)
    m_img = normalise_intensity(moving.data).to(device)
    mask = f_img > FOREGROUND_FRACTION
    result = RegistrationResult(displacement=torch.empty(0))
    start = time.perf_counter()
    nf1 = NeuralField(params, generator).to(device)
    coarse = params.sampler in ("hybrid", "downsize")
    if coarse:
        sampler, ctx = _downsize_phase(f_img, m_img, params.downsize_spacing_mm, frame, moving,
                                       device, generator)
        iterations = params.coarse_iterations if params.sampler == "hybrid" else params.iterations
        result.phases["coarse"] = fit(nf1, sampler, ctx, params, iterations,
                                      "NF1 downsize", progress)
    model: nn.Module = nf1
    exact: nn.Module = nf1
    ctx = _context(m_img, frame, moving, device)
    if params.sampler == "hybrid":
        nf1.requires_grad_(False)
        phi1 = dense_deformation(nf1, frame, device, params.chunk_points,
                                  params.inference_stride)
        norm_from_field = torch.as_tensor(frame.norm_from_field, dtype=torch.float32,
                                          device=device)
        nf2 = NeuralField(params, generator, fine=True, radius_mm=frame.radius_mm).to(device)
        model = ComposedField(DenseField(phi1, norm_from_field), nf2)
        exact = ComposedField(nf1, nf2)
        if params.fine_sampler == "downsize":
            sampler, ctx = _downsize_phase(f_img, m_img, params.fine_spacing_mm, frame, moving,
                                           device, generator)
        else:
            sampler = MinipatchSampler(f_img, mask, params.patches, params.patch_size, generator)
        result.phases["fine"] = fit(model, sampler, ctx, params, params.iterations,
                                    f"NF2 {params.fine_sampler}", progress)
    elif params.sampler == "minipatch":
        sampler = MinipatchSampler(f_img, mask, params.patches, params.patch_size, generator)
        result.phases["fine"] = fit(nf1, sampler, ctx, params, params.iterations,
                                    "NF minipatch", progress)
    elif params.sampler == "random":
        sampler = RandomSampler(f_img, mask, params.random_points, generator)
        result.phases["fine"] = fit(nf1, sampler, ctx, params, params.iterations,
                                    "NF random", progress)
    result.seconds["fit"] = time.perf_counter() - start
    start = time.perf_counter()
    model.requires_grad_(False)
    phi = dense_deformation(model, frame, device, params.chunk_points,
                            params.inference_stride, progress, "full grid")
    result.displacement = field_to_world_displacement(phi, frame)
    if inverse:
        exact.requires_grad_(False)
        phi_inv = dense_deformation(_Inverse(exact), frame, device, params.chunk_points,
                                    params.inference_stride, progress, "inverse")
        result.inverse_displacement = field_to_world_displacement(phi_inv, frame)
    result.seconds["inference"] = time.perf_counter() - start
    return result
