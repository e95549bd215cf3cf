"""The same seed gives bit-identical CPU results; a different seed does not."""

from __future__ import annotations

import pytest
import torch

from nir.engine.params import load_params
from nir.engine.register import register
from tests.test_recovery import _pair


# the fine phase draws random sub-boxes of the downsize grid, or random mini-patches
@pytest.mark.parametrize("fine", [{}, {"fine_sampler": "minipatch", "patches": 2,
                                       "patch_size": 12}], ids=["downsize", "minipatch"])
def test_same_seed_same_result(fine) -> None:
    fixed, moving, _, _ = _pair()
    params = load_params(coarse_iterations=15, iterations=15, downsize_spacing_mm=3.0, **fine)
    a = register(fixed, moving, params, seed=3, progress=False).displacement
    b = register(fixed, moving, params, seed=3, progress=False).displacement
    c = register(fixed, moving, params, seed=4, progress=False).displacement
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
