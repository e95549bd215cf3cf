"""SIREN: an MLP with sinusoidal activations and its principled initialisation (Sitzmann 2020)."""

from __future__ import annotations

import math

import torch
from torch import nn


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
        return self.head(self.body(x))
