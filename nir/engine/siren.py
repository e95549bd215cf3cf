"""SIREN: an MLP with sinusoidal activations and its principled initialisation (Sitzmann 2020).

Outside autocast the whole network runs as one autograd function (:class:`_SirenFunction`)
that walks the rows in chunks, so each chunk's activations stay in cache through all layers,
forwards and backwards.  Under autocast (bfloat16 on CUDA) the layers run as plain modules.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

CPU_CHUNK_ROWS = 16384  # rows per chunk on the CPU: 2 MB per activation at width 32


class SineLayer(nn.Module):
    """y = sin(omega0 * (W x + b)), with SIREN's uniform initialisation."""

    def __init__(self, in_features: int, out_features: int, omega0: float, first: bool,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.omega0 = omega0
        self.linear = nn.Linear(in_features, out_features)
        bound = 1.0 / in_features if first else math.sqrt(6.0 / in_features) / omega0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound, generator=generator)
            self.linear.bias.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return torch.sin(z if self.omega0 == 1.0 else self.omega0 * z)


def _chunks(rows: int, device: torch.device) -> list[slice]:
    step = CPU_CHUNK_ROWS if device.type == "cpu" else max(rows, 1)
    return [slice(a, min(rows, a + step)) for a in range(0, rows, step)]


class _SirenFunction(torch.autograd.Function):
    """sin layers then a linear head on rows (N, F), chunk by chunk; the backward pass is
    written out: the gradient at a sine layer is ``omega * cos(z) * g`` and that of each
    linear map follows from its saved input."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, omegas: tuple[float, ...],
                *weights: torch.Tensor) -> torch.Tensor:
        layers = len(omegas)
        rows = x.shape[0]
        pre = [x.new_empty(rows, weights[2 * k].shape[0]) for k in range(layers)]
        post = [torch.empty_like(z) for z in pre]
        head_w, head_b = weights[-2], weights[-1]
        out = x.new_empty(rows, head_w.shape[0])
        for c in _chunks(rows, x.device):
            h = x[c]
            for k, omega in enumerate(omegas):
                z = torch.addmm(weights[2 * k + 1], h, weights[2 * k].t(), out=pre[k][c])
                if omega != 1.0:
                    z.mul_(omega)
                h = torch.sin(z, out=post[k][c])
            torch.addmm(head_b, h, head_w.t(), out=out[c])
        ctx.omegas = omegas
        ctx.save_for_backward(x, *pre, *post, *weights)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        omegas = ctx.omegas
        layers = len(omegas)
        saved = ctx.saved_tensors
        x, pre, post = saved[0], saved[1:1 + layers], saved[1 + layers:1 + 2 * layers]
        weights = saved[1 + 2 * layers:]
        grads = [torch.zeros_like(w) for w in weights]
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        for c in _chunks(x.shape[0], x.device):
            g = grad[c]
            grads[-2].addmm_(g.t(), post[-1][c])
            grads[-1].add_(g.sum(0))
            g = g @ weights[-2]
            for k in reversed(range(layers)):
                g = g.mul_(pre[k][c].cos())
                if omegas[k] != 1.0:
                    g.mul_(omegas[k])
                below = x[c] if k == 0 else post[k - 1][c]
                grads[2 * k].addmm_(g.t(), below)
                grads[2 * k + 1].add_(g.sum(0))
                if k > 0:
                    g = g @ weights[2 * k]
                elif grad_x is not None:
                    torch.mm(g, weights[0], out=grad_x[c])
        return (grad_x, None, *grads)


class Siren(nn.Module):
    """SIREN MLP whose last linear layer starts at zero, so the field starts at the identity.

    Args:
        in_features: input width (the encoding's output width).
        hidden: width of each hidden layer.
        layers: number of sine layers.
        omega0: frequency factor of the first sine layer; hidden layers use ``omega0_hidden``.
    """

    def __init__(self, in_features: int, hidden: int, layers: int, omega0: float,
                 omega0_hidden: float = 30.0, out_features: int = 3,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        blocks = [SineLayer(in_features, hidden, omega0, first=True, generator=generator)]
        blocks += [SineLayer(hidden, hidden, omega0_hidden, first=False, generator=generator)
                   for _ in range(layers - 1)]
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, out_features)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network at inputs (..., in_features) -> (..., out_features)."""
        if torch.is_autocast_enabled(x.device.type):
            return self.head(self.body(x))
        lead = x.shape[:-1]
        weights = [p for block in self.body for p in (block.linear.weight, block.linear.bias)]
        out = _SirenFunction.apply(x.reshape(-1, x.shape[-1]),
                                   tuple(block.omega0 for block in self.body),
                                   *weights, self.head.weight, self.head.bias)
        return out.reshape(*lead, -1)
