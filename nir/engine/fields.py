"""Neural deformation fields evaluated on a lattice: displacement or stationary velocity.

Every field maps points ``x`` (..., 3) in the field frame (:mod:`nir.spatial.frame`) of the
fixed image to their deformed positions ``phi(x)``, also in the field frame. The network is
evaluated on the nodes of a :class:`~nir.engine.lattice.Lattice` and ``phi`` is read between
them trilinearly, in training and at inference alike, so the field that is fitted is exactly the
one written out.
"""

from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint

from nir.engine.encoding import FourierFeatures, GridFeatures
from nir.engine.lattice import Lattice, Region, interpolate_grid
from nir.engine.params import RegistrationParams
from nir.engine.siren import Siren
from nir.spatial.geometry import sample


class NeuralField(nn.Module):
    """Encoding -> SIREN -> 3 outputs at the lattice nodes, read as a displacement or velocity.

    The encoding is random Fourier features, or for the hybrid residual field NF2 optionally
    learnable feature grids on the lattice (``fine_encoding: grid``).  The network starts at
    zero output, i.e. at the identity.

    ``displacement`` mode: phi(x) = x + u(x).  ``velocity`` mode: phi(x) is the solution at
    t = 1 of dy/dt = v(y), y(0) = x, integrated at the nodes by torchdiffeq's fixed-step solver
    through the trilinear interpolant of v; the inverse map integrates -v.
    """

    def __init__(self, params: RegistrationParams, lattice: Lattice,
                 generator: torch.Generator | None = None, fine: bool = False) -> None:
        super().__init__()
        self.mode = params.mode
        self.lattice = lattice
        self.output_scale = params.output_scale
        self.ode_method = params.ode_method
        self.ode_steps = params.ode_steps
        self.precision = params.precision
        self.encoding: nn.Module
        nodes = lattice.nodes()
        if fine and params.fine_encoding == "grid":
            self.encoding = GridFeatures(lattice.shape, params.grid_levels, params.grid_features,
                                         generator)
        else:
            sigma = params.fine_fourier_sigma if fine else params.fourier_sigma
            self.encoding = FourierFeatures(params.fourier_features, sigma, generator)
            self.register_buffer("code", self.encoding(nodes), persistent=False)
        hidden = params.fine_hidden if fine else params.hidden
        self.net = Siren(self.encoding.out_features, hidden, params.layers, params.omega0,
                         params.omega0_hidden, generator=generator)
        self.register_buffer("nodes", nodes, persistent=False)
        self.register_buffer("norm_from_field", torch.as_tensor(
            lattice.norm_from_field, dtype=torch.float32), persistent=False)
        self.register_buffer("_times", torch.tensor([0.0, 1.0]), persistent=False)

    def _encoded(self, region: Region | None) -> torch.Tensor:
        """The encoding at the nodes of ``region`` (default: all), (*size, features)."""
        if isinstance(self.encoding, GridFeatures):
            return self.encoding(region).movedim(0, -1)
        return self.code if region is None else self.code[region]

    def _autocast(self) -> bool:
        if self.precision == "auto":
            return self.nodes.device.type == "cuda"
        return self.precision == "bfloat16"

    def vector(self, region: Region | None = None) -> torch.Tensor:
        """The raw field at the nodes: displacement u or velocity v, field units, (3, *size)."""
        encoded = self._encoded(region)
        with torch.autocast(device_type=self.nodes.device.type, dtype=torch.bfloat16,
                            enabled=self._autocast()):
            out = self.net(encoded)
        return (out.float() * self.output_scale).permute(3, 0, 1, 2).contiguous()

    def _norm_from_field(self, region: Region | None) -> torch.Tensor:
        if region is None:
            return self.norm_from_field
        return torch.as_tensor(self.lattice.crop(region).norm_from_field, dtype=torch.float32,
                               device=self.nodes.device)

    def node_displacement(self, inverse: bool = False,
                          region: Region | None = None) -> torch.Tensor:
        """phi(x) - x (or phi^-1(x) - x) at the nodes of ``region`` (default: all), field
        units, (3, *size).

        On a region the velocity is integrated on that sub-lattice alone (clamped at its
        border): exact wherever trajectories stay inside it, so a region should extend a few
        nodes beyond the points that are read from it.
        """
        v = self.vector(region)
        if self.mode == "displacement":
            if inverse:
                raise ValueError("an inverse map is available in velocity mode only")
            return v
        sign = -1.0 if inverse else 1.0
        nodes = self.nodes if region is None else self.nodes[region]
        norm_from_field = self._norm_from_field(region)
        at_nodes = sign * v.permute(1, 2, 3, 0)

        def rhs(_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if y is nodes:  # the first stage starts on the nodes: no interpolation
                return at_nodes
            return sign * sample(v, y, padding_mode="border",
                                 matrix=norm_from_field).movedim(0, -1)

        y = odeint(rhs, nodes, self._times, method=self.ode_method,
                   options={"step_size": 1.0 / self.ode_steps})[-1]
        return (y - nodes).permute(3, 0, 1, 2)

    def at_points(self, displacement: torch.Tensor, x: torch.Tensor,
                  region: Region | None = None) -> torch.Tensor:
        """phi(x) at field points ``x`` (..., 3) from :meth:`node_displacement`'s output."""
        return x + sample(displacement, x, padding_mode="border",
                          matrix=self._norm_from_field(region)).movedim(0, -1)

    def at_grid(self, displacement: torch.Tensor, axes: list[torch.Tensor],
                region: Region | None = None) -> torch.Tensor:
        """phi(x) - x on the grid of field-unit ``axes``, as (3, L0, L1, L2) (separable)."""
        lattice = self.lattice if region is None else self.lattice.crop(region)
        weights = [lattice.weights(a, axis) for a, axis in enumerate(axes)]
        return interpolate_grid(displacement, weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x) at field points ``x`` (..., 3)."""
        return self.at_points(self.node_displacement(), x)

    def deform_points(self, points: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """phi (or phi^-1, velocity mode only) at field points ``points`` (..., 3)."""
        return self.at_points(self.node_displacement(inverse=inverse), points)

    def deform_grid(self, axes: list[torch.Tensor], inverse: bool = False) -> torch.Tensor:
        """phi (or phi^-1) on the grid of field-unit ``axes``, (L0, L1, L2, 3), read
        separably."""
        u = self.at_grid(self.node_displacement(inverse=inverse), axes).movedim(0, -1)
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).add_(u)
