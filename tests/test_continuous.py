"""The paper's engine, field: continuous: recovery of a known deformation, exact agreement of
the written warp with what the fit evaluated, the composition of the hybrid scheme, and the
finite-difference Jacobian of its folding penalty."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nir.engine.continuous import ContinuousField
from nir.engine.continuous_step import batch_points, stencil_gradients
from nir.engine.inference import dense_deformation, voxel_axes
from nir.engine.losses import displacement_gradients
from nir.engine.params import load_params
from nir.engine.register import register
from nir.engine.samplers._base import Batch
from nir.errors import NirInputError
from nir.spatial.frame import FieldFrame
from nir.spatial.jacobian import jacobian_determinant_map
from tests.test_recovery import _pair

# the phantom is 60 mm across: sigma 1 cycle per field unit is a band of about 30 mm and finer
RECOVERY = {"field": "continuous", "sampler": "downsize", "iterations": 150,
            "downsize_spacing_mm": 3.0, "fourier_sigma": 1.0, "smoothness_weight": 0.0}


@pytest.mark.parametrize("mode", ["displacement", "velocity"])
def test_continuous_field_recovers_a_known_deformation(mode: str) -> None:
    fixed, moving, u_mm, inside = _pair()
    result = register(fixed, moving, load_params(mode=mode, **RECOVERY), seed=0,
                      progress=False)
    error_vox = np.linalg.norm(result.displacement.numpy() - u_mm, axis=-1)[inside] / 1.5
    initial = np.linalg.norm(u_mm, axis=-1)[inside] / 1.5
    assert np.median(initial) > 1.0
    # measured: 0.26 voxel in both modes (0.4 mm); the bound is 0.5 voxel (0.75 mm)
    assert np.median(error_vox) < 0.5, f"median endpoint error {np.median(error_vox):.3f} voxel"
    detj = jacobian_determinant_map(result.displacement, fixed.affine).numpy()
    assert (detj[inside] <= 0).sum() == 0


def test_the_written_warp_is_the_field_the_fit_evaluated() -> None:
    """At voxel centres the fit and inference evaluate the same network at the same points:
    the dense warp equals the field read as the fit reads it, to float rounding."""
    fixed, moving, _, _ = _pair()
    params = load_params(field="continuous", sampler="minipatch", iterations=20,
                         patch_size=8, mode="velocity", ode_steps=2)
    result = register(fixed, moving, params, seed=1, progress=False)
    frame = FieldFrame.from_affine(fixed.shape, fixed.affine)
    to_field = torch.as_tensor(frame.field_from_voxel, dtype=torch.float32)
    voxels = torch.tensor([[3.0, 7.0, 11.0], [20.0, 19.0, 21.0], [33.0, 2.0, 30.0]])
    batch = Batch(fixed=torch.zeros(3, 1, 1, 1, 1), points=voxels[:, None, None, None])
    x = batch_points(batch, to_field)
    with torch.no_grad():
        phi = result.fields[0](x)[:, 0, 0, 0]
    mm_per_unit = 1.0 / float(frame.field_from_voxel[0, 0]) * frame.spacing[0]
    expected = (phi - x[:, 0, 0, 0]) * mm_per_unit  # RAS mm: the affine is a positive diagonal
    written = result.displacement[tuple(voxels.long().T)]
    assert float(written.abs().max()) > 0.05  # the field moved
    torch.testing.assert_close(written, expected, atol=1e-5, rtol=1e-5)


def test_the_hybrid_composes_nf2_inside_nf1_exactly() -> None:
    fixed, moving, _, _ = _pair()
    params = load_params(field="continuous", sampler="hybrid", fine_sampler="minipatch",
                         fine_encoding="fourier", coarse_iterations=10, iterations=10,
                         downsize_spacing_mm=3.0, patch_size=8, mode="displacement")
    result = register(fixed, moving, params, seed=0, progress=False)
    nf1, nf2 = result.fields
    frame = FieldFrame.from_affine(fixed.shape, fixed.affine)
    axes = voxel_axes(frame)
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    with torch.no_grad():
        composed = nf1(nf2(grid))
        alone = nf1(grid)
        torch.testing.assert_close(dense_deformation([nf1, nf2], frame), composed)
    assert float((composed - alone).abs().max()) > 1e-4  # NF2 changed something


def test_stencil_and_in_grid_differences_agree() -> None:
    """On a grid one voxel apart, the extra-neighbour stencil and the differences between the
    grid's own samples are the same forward differences."""
    params = load_params(field="continuous", sampler="minipatch", mode="displacement",
                         output_scale=0.5)
    field = ContinuousField(params, torch.Generator().manual_seed(4))
    torch.nn.init.normal_(field.net.head.weight, std=0.3)
    step = torch.tensor([0.02, 0.03, 0.025])
    axes = [torch.arange(5) * step[a] for a in range(3)]
    x = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)[None]
    with torch.no_grad():
        u = field(x) - x
        in_grid = displacement_gradients(u.movedim(-1, 0), step.tolist())
        stencil_x = torch.cat([x] + [x + step * torch.eye(3)[a] for a in range(3)])
        stencil = stencil_gradients(field(stencil_x) - stencil_x, 1, step)
    for a in range(3):
        torch.testing.assert_close(stencil[a][..., :-1, :-1, :-1], in_grid[a], atol=1e-5,
                                   rtol=1e-4)
    assert float(in_grid[0].abs().max()) > 0.01


def test_continuous_field_needs_fourier_features_for_nf2() -> None:
    with pytest.raises(NirInputError, match="fine_encoding: grid needs field: lattice"):
        load_params(field="continuous", sampler="hybrid", fine_encoding="grid")
    with pytest.raises(NirInputError, match="field must be one of"):
        load_params(field="mesh")
