"""The fused, chunked SIREN against the same layers applied one by one."""

from __future__ import annotations

import pytest
import torch

from nir.engine import siren
from nir.engine.siren import Siren


def _network(layers: int, omega0: float, omega0_hidden: float) -> Siren:
    net = Siren(12, 16, layers, omega0, omega0_hidden,
                generator=torch.Generator().manual_seed(layers)).double()
    with torch.no_grad():  # the head starts at zero; move it so every gradient is non-trivial
        g = torch.Generator().manual_seed(7)
        net.head.weight.copy_(0.3 * torch.randn(net.head.weight.shape, generator=g))
        net.head.bias.copy_(0.3 * torch.randn(net.head.bias.shape, generator=g))
    return net


@pytest.mark.parametrize(("layers", "omega0", "omega0_hidden"), [(2, 1.0, 1.0), (3, 30.0, 2.0),
                                                                 (1, 1.0, 1.0)])
def test_fused_network_matches_its_layers(monkeypatch, layers, omega0, omega0_hidden) -> None:
    monkeypatch.setattr(siren, "CPU_CHUNK_ROWS", 100)  # 7 x 8 x 9 = 504 rows: 6 chunks
    net = _network(layers, omega0, omega0_hidden)
    g = torch.Generator().manual_seed(0)
    channels_first = torch.randn(12, 7, 8, 9, generator=g, dtype=torch.float64) * 0.5
    grad_out = torch.randn(7, 8, 9, 3, generator=g, dtype=torch.float64)
    results = []
    for fused in (True, False):
        x = channels_first.clone().requires_grad_(True)
        inputs = x.movedim(0, -1)  # a strided view, as the feature grids hand it over
        out = net(inputs) if fused else net.head(net.body(inputs))
        grads = torch.autograd.grad(out, [x, *net.parameters()], grad_out)
        results.append((out, grads))
    (out, grads), (ref_out, ref_grads) = results
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    for ours, reference in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_fused_network_passes_gradcheck(monkeypatch) -> None:
    monkeypatch.setattr(siren, "CPU_CHUNK_ROWS", 7)
    net = _network(2, 3.0, 1.5)
    x = torch.randn(20, 12, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64).requires_grad_(True)
    params = list(net.parameters())

    def run(inputs: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        return siren._SirenFunction.apply(inputs, (3.0, 1.5), *weights)

    assert torch.autograd.gradcheck(run, (x, *params))


def test_under_autocast_the_layers_run_in_bfloat16() -> None:
    net = _network(2, 1.0, 1.0).float()
    x = torch.randn(50, 12, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(x)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), net(x), rtol=0.05, atol=0.05)
