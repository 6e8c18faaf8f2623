"""The Q-network: one shared MLP that scores a candidate move from its feature row.

There is no output per action: the network maps a row of `N_FEATURES` numbers to one Q-value,
so the same weights score the 20 candidates of a 10x3 day and the thousands of a 300x40 day.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

ARCHITECTURE = "candidate-mlp"


class QNetwork(nn.Module):
    """Q(s, a) = MLP(features(s, a)); input (..., n_features), output (...)."""

    def __init__(self, n_features: int, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        self.n_features = int(n_features)
        self.hidden = tuple(int(h) for h in hidden)
        layers: list[nn.Module] = []
        width = self.n_features
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mlp(x).squeeze(-1)
        return out

    def architecture(self) -> dict[str, Any]:
        """What `build_network` needs to rebuild this network (stored in the model metadata)."""
        return {"kind": ARCHITECTURE, "n_features": self.n_features, "hidden": list(self.hidden)}


def build_network(architecture: dict[str, Any]) -> QNetwork:
    """Rebuild a network from its `architecture()`; raises ValueError for an unknown kind."""
    if architecture.get("kind") != ARCHITECTURE:
        raise ValueError(f"unknown architecture {architecture.get('kind')!r}")
    return QNetwork(int(architecture["n_features"]), tuple(architecture["hidden"]))


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def polyak_update(
    params: Sequence[torch.Tensor] | Any, target_params: Sequence[torch.Tensor] | Any, tau: float
) -> None:
    """target <- tau * online + (1 - tau) * target, in place, without autograd (SB3's rule)."""
    with torch.no_grad():
        for p, t in zip(params, target_params, strict=True):
            t.mul_(1.0 - tau).add_(p, alpha=tau)
