"""One fitting iteration of a continuous field: the loss of the paper's NIR on one batch.

The network is evaluated at every sampled coordinate (and, for the hybrid scheme's NF2, the
frozen fields of the earlier phases are evaluated at its output: phi = phi_1 o phi_2 exactly,
with no resampled image in between).  The moving image is read trilinearly at phi(x).  The
loss is local NCC (global NCC for random points) plus the Jacobian terms at the sampled
coordinates (:func:`nir.engine.losses.jacobian_terms`: the paper's L_jdet, mean ReLU(-det J),
and optionally volume and diffusion terms).

**The Jacobian is taken by forward finite differences one fixed-image voxel apart, in mm**
(field units, which are isotropic), not by autograd.  Why: the folding the tables report is
the finite-difference det J of the written, voxel-sampled warp, so the penalty targets exactly
what is measured; a field of high-frequency Fourier features can have a positive analytic
Jacobian at every sample and still fold between voxel centres.  It is also cheap: on a batch
whose samples are one voxel apart (mini-patches, random 2x2x2 stencils) the neighbours are
samples the batch evaluates anyway, and a coarser grid (the downsize sampler) adds one
neighbour per axis (4x the points); autograd would differentiate through the SIREN and, in
velocity mode, the ODE solver twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nir.engine.continuous import ContinuousField
from nir.engine.fit import FitContext, FitLog, Similarity
from nir.engine.losses import displacement_gradients, jacobian_terms
from nir.engine.params import RegistrationParams
from nir.engine.samplers._base import Batch
from nir.spatial.geometry import transform_points


def batch_points(batch: Batch, field_from_voxel: torch.Tensor) -> torch.Tensor:
    """The batch's samples in field units, (B, D, H, W, 3)."""
    scale = torch.diagonal(field_from_voxel)[:3]
    shift = field_from_voxel[:3, 3]
    if batch.axes is not None:
        grid = torch.stack(torch.meshgrid(*batch.axes, indexing="ij"), dim=-1)[None]
        return grid * scale + shift
    return batch.points * scale + shift


def stencil_gradients(u: torch.Tensor, count: int, steps: torch.Tensor
                      ) -> tuple[torch.Tensor, ...]:
    """du/dx_a from u (4 count, ..., 3) at x, x + h_0 e_0, x + h_1 e_1, x + h_2 e_2 (stacked
    in that order); each (3, count, ...), row r = du_r/dx_a."""
    base = u[:count]
    return tuple(((u[count * (a + 1):count * (a + 2)] - base) / steps[a]).movedim(-1, 0)
                 for a in range(3))


class ContinuousStep:
    """The loss of a :class:`ContinuousField` on a batch (see the module docstring).

    Args:
        model: the field being fitted.
        frozen: fields of the earlier phases (NF1 first), composed on the fixed side of none
            of them: phi = frozen[0] o ... o frozen[-1] o model.
        ctx: the moving image and the coordinate maps of the phase.
        sampler: the phase's sampler (the fixed window sums of a recurring grid are cached).
        params: the loss weights (``folding_weight``, ``volume_weight``,
            ``smoothness_weight``).
    """

    def __init__(self, model: ContinuousField, frozen: Sequence[ContinuousField],
                 ctx: FitContext, sampler: object, params: RegistrationParams) -> None:
        self.model = model
        self.frozen = list(frozen)
        self.ctx = ctx
        self.similarity = Similarity(ctx.window, sampler)
        self.weights = (params.folding_weight, params.volume_weight, params.smoothness_weight)
        self.voxel = torch.diagonal(ctx.field_from_voxel)[:3]  # one voxel, field units

    def deform(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x) of the composition at field points ``x`` (..., 3)."""
        y = self.model(x)
        for earlier in reversed(self.frozen):
            y = earlier(y)
        return y

    def __call__(self, batch: Batch, log: FitLog) -> torch.Tensor:
        with log.timed("field"):
            x = batch_points(batch, self.ctx.field_from_voxel)
            in_grid = batch.step == (1, 1, 1) and min(x.shape[1:4]) >= 2
            count = x.shape[0]
            if not in_grid:  # one neighbour a voxel away along each axis
                x = torch.cat([x] + [x + self.voxel * torch.eye(3, device=x.device)[a]
                                     for a in range(3)])
            phi = self.deform(x)
            u = phi - x
        with log.timed("interpolation"):
            m = self.ctx.moving_voxel_from_field
            coords = transform_points(phi[:count], m[:3, :3], m[:3, 3])
            warped = self.ctx.moving(coords.movedim(-1, 0))[:, None]
        with log.timed("loss"):
            if in_grid:
                gradients = displacement_gradients(u.movedim(-1, 0), self.voxel.tolist())
            else:
                gradients = stencil_gradients(u, count, self.voxel)
            penalty, _ = jacobian_terms(gradients, *self.weights)
            return self.similarity(batch, warped) + penalty
