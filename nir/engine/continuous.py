"""The paper's neural field: the network is evaluated at every coordinate it is asked about.

A :class:`ContinuousField` maps points ``x`` (..., 3) in the field frame of the fixed image
(:mod:`nir.spatial.frame`) to their deformed positions ``phi(x)``: random Fourier features of
``x`` go through a SIREN whose output, times ``output_scale``, is a displacement
(``phi(x) = x + u(x)``) or a stationary velocity that torchdiffeq integrates from t = 0 to 1
starting at ``x`` itself, point by point (``phi^-1`` integrates ``-v``).  No lattice lies in
between: in training the network is evaluated at the sampled coordinates, at inference at every
voxel centre, in chunks (:meth:`ContinuousField.deform_points`).  Compare
:class:`nir.engine.fields.NeuralField`, which evaluates it on the nodes of a mm lattice.
"""

from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint

from nir.engine.encoding import FourierFeatures
from nir.engine.params import RegistrationParams
from nir.engine.siren import Siren

INFERENCE_CHUNK = 1 << 17  # points per network evaluation when no gradient is kept


class ContinuousField(nn.Module):
    """Fourier features -> SIREN -> displacement or velocity, at any point.

    Args:
        params: the registration parameters (``fourier_features``, ``fourier_sigma``,
            ``hidden``, ``layers``, ``omega0``, ``omega0_hidden``, ``output_scale``, ``mode``,
            ``ode_method``, ``ode_steps``, ``precision``; with ``fine`` the hybrid NF2's
            ``fine_fourier_sigma`` and ``fine_hidden``).
        generator: seeded generator for the frequencies and the initial weights.
        fine: build the hybrid scheme's residual field NF2.
    """

    def __init__(self, params: RegistrationParams, generator: torch.Generator | None = None,
                 fine: bool = False) -> None:
        super().__init__()
        self.mode = params.mode
        self.output_scale = params.output_scale
        self.ode_method = params.ode_method
        self.ode_steps = params.ode_steps
        self.precision = params.precision
        sigma = params.fine_fourier_sigma if fine else params.fourier_sigma
        self.encoding = FourierFeatures(params.fourier_features, sigma, generator)
        hidden = params.fine_hidden if fine else params.hidden
        self.net = Siren(self.encoding.out_features, hidden, params.layers, params.omega0,
                         params.omega0_hidden, generator=generator)
        self.register_buffer("_times", torch.tensor([0.0, 1.0]), persistent=False)

    def _autocast(self, device: torch.device) -> bool:
        if self.precision == "auto":
            return device.type == "cuda"
        return self.precision == "bfloat16"

    def vector(self, x: torch.Tensor) -> torch.Tensor:
        """The raw field at points ``x`` (..., 3): displacement u or velocity v, field units."""
        code = self.encoding(x)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16,
                            enabled=self._autocast(x.device)):
            out = self.net(code)
        return out.float() * self.output_scale

    def forward(self, x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """phi(x) (or phi^-1(x), velocity mode only) at field points ``x`` (..., 3)."""
        if self.mode == "displacement":
            if inverse:
                raise ValueError("an inverse map is available in velocity mode only")
            return x + self.vector(x)
        sign = -1.0 if inverse else 1.0
        shape = x.shape
        start = x.reshape(-1, 3)

        def rhs(_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return sign * self.vector(y)

        end = odeint(rhs, start, self._times, method=self.ode_method,
                     options={"step_size": 1.0 / self.ode_steps})[-1]
        return end.reshape(shape)

    def deform_points(self, points: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """phi (or phi^-1) at ``points`` (..., 3); without a gradient, in chunks of
        INFERENCE_CHUNK points so that a whole 1 mm grid fits in memory."""
        if torch.is_grad_enabled():
            return self(points, inverse)
        flat = points.reshape(-1, 3)
        out = torch.empty_like(flat)
        for start in range(0, flat.shape[0], INFERENCE_CHUNK):
            part = slice(start, start + INFERENCE_CHUNK)
            out[part] = self(flat[part], inverse)
        return out.reshape(points.shape)

    def deform_grid(self, axes: list[torch.Tensor], inverse: bool = False) -> torch.Tensor:
        """phi (or phi^-1) at every point of the grid of field-unit ``axes``, (L0, L1, L2, 3)."""
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
        return self.deform_points(grid, inverse)
