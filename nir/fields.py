"""Neural deformation fields: displacement or stationary-velocity, and their composition.

Every field maps points ``x`` (..., 3) in the field frame (:mod:`nir.frame`) of the fixed image
to their deformed positions ``phi(x)``, also in the fixed field frame; the moving image is then
sampled there.
"""

from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint

from nir.encoding import FourierFeatures, GridFeatures
from nir.geometry import apply_matrix, identity_grid, sample
from nir.params import RegistrationParams
from nir.siren import Siren


class NeuralField(nn.Module):
    """Encoding -> SIREN -> 3 outputs, read as a displacement or a stationary velocity.

    The encoding is random Fourier features, or for the hybrid residual field NF2 optionally
    learnable feature grids (``fine_encoding: grid``, spacings in mm over ``radius_mm``, the
    field unit).

    ``displacement`` mode: phi(x) = x + u(x).  ``velocity`` mode: phi(x) is the solution at
    t = 1 of dy/dt = v(y), y(0) = x, integrated by torchdiffeq's fixed-step solver; the
    inverse map integrates -v.  The network starts at zero output, i.e. at the identity.
    """

    def __init__(self, params: RegistrationParams, generator: torch.Generator | None = None,
                 fine: bool = False, radius_mm: float | None = None) -> None:
        super().__init__()
        self.mode = params.mode
        self.output_scale = params.output_scale
        self.ode_method = params.ode_method
        self.ode_steps = params.ode_steps
        self.encoding: nn.Module
        if fine and params.fine_encoding == "grid":
            if radius_mm is None:
                raise ValueError("a feature-grid field needs radius_mm, the field unit in mm")
            spacings = tuple(s / radius_mm for s in params.grid_spacings_mm)
            self.encoding = GridFeatures(spacings, params.grid_features, generator)
        else:
            sigma = params.fine_fourier_sigma if fine else params.fourier_sigma
            self.encoding = FourierFeatures(params.fourier_features, sigma, generator)
        self.net = Siren(self.encoding.out_features, params.hidden, params.layers, params.omega0,
                         params.omega0_hidden, generator=generator)
        self.register_buffer("_times", torch.tensor([0.0, 1.0]))

    def vector(self, x: torch.Tensor) -> torch.Tensor:
        """The raw field: displacement u(x) or velocity v(x), in field units."""
        encoded = self.encoding(x)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16,
                            enabled=x.device.type == "cuda"):
            out = self.net(encoded)
        return out.float() * self.output_scale

    def _integrate(self, x: torch.Tensor, sign: float) -> torch.Tensor:
        def rhs(_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return sign * self.vector(y)

        times = self._times.to(x.dtype)
        return odeint(rhs, x, times, method=self.ode_method,
                      options={"step_size": 1.0 / self.ode_steps})[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "displacement":
            return x + self.vector(x)
        return self._integrate(x, 1.0)

    def integrate_on_lattice(self, x: torch.Tensor, norm_from_field: torch.Tensor) -> torch.Tensor:
        """phi on a regular lattice ``x`` (D, H, W, 3), with v evaluated once on the lattice.

        The ODE is solved through the trilinear interpolant of v (``norm_from_field`` maps
        field coordinates to the lattice's normalised coordinates): one network evaluation
        per point instead of one per solver stage.  Used where v is smooth at the lattice scale.
        """
        if self.mode != "velocity":
            return self(x)
        v = self.vector(x).permute(3, 0, 1, 2)

        def rhs(_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            norm = apply_matrix(norm_from_field, y)
            return sample(v, norm, padding_mode="border").movedim(0, -1)

        return odeint(rhs, x, self._times.to(x.dtype), method=self.ode_method,
                      options={"step_size": 1.0 / self.ode_steps})[-1]

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """phi^-1(x); exact only for velocity fields (integrates -v)."""
        if self.mode != "velocity":
            raise ValueError("an inverse map is available in velocity mode only")
        return self._integrate(x, -1.0)


class DenseField(nn.Module):
    """A frozen deformation stored on the fixed voxel grid, interpolated trilinearly.

    ``phi`` (I, J, K, 3) holds deformed positions in field units at every fixed voxel;
    ``norm_from_field`` maps field coordinates to the grid's normalised coordinates.
    """

    def __init__(self, phi: torch.Tensor, norm_from_field: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("displacement", (phi - self._grid_points(phi, norm_from_field))
                             .permute(3, 0, 1, 2).contiguous())
        self.register_buffer("norm_from_field", norm_from_field)

    @staticmethod
    def _grid_points(phi: torch.Tensor, norm_from_field: torch.Tensor) -> torch.Tensor:
        field_from_norm = torch.linalg.inv(norm_from_field.double()).to(phi.dtype)
        return apply_matrix(field_from_norm, identity_grid(phi.shape[:3], phi.device, phi.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = apply_matrix(self.norm_from_field, x)
        disp = sample(self.displacement, norm, padding_mode="border")
        return x + disp.movedim(0, -1)


class ComposedField(nn.Module):
    """phi(x) = second(first(x)): a frozen coarse field NF1 followed by a residual field NF2."""

    def __init__(self, first: nn.Module, second: nn.Module) -> None:
        super().__init__()
        self.first = first
        self.second = second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """phi^-1 = first^-1 o second^-1 (both must be invertible)."""
        return self.first.inverse(self.second.inverse(x))
