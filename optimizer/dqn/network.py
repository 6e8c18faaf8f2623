"""The Q-network: one shared MLP that scores a candidate move from its feature row.

There is no output per action: the network maps a row of `N_FEATURES` numbers to one Q-value,
so the same weights score the 20 candidates of a 10x3 day and the thousands of a 300x40 day.
Training only: a worker serves `weights()` (numpy, `optimizer.dqn.inference`), not this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from optimizer.dqn.inference import ARCHITECTURE, MlpWeights, build_weights


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

    def weights(self) -> MlpWeights:
        """The weights as numpy arrays: what the registry stores and the worker serves."""
        linears = [m for m in self.mlp if isinstance(m, nn.Linear)]
        arrays = {}
        for i, layer in enumerate(linears):
            arrays[f"layer{i}.weight"] = layer.weight.detach().cpu().numpy().astype(np.float32)
            arrays[f"layer{i}.bias"] = layer.bias.detach().cpu().numpy().astype(np.float32)
        return build_weights(self.architecture(), arrays)

    @classmethod
    def from_weights(cls, weights: MlpWeights) -> QNetwork:
        """A torch network with these weights (to fine-tune an exported model)."""
        net = cls(weights.n_features, weights.hidden)
        linears = [m for m in net.mlp if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for layer, (w, b) in zip(linears, weights.layers, strict=True):
                layer.weight.copy_(torch.from_numpy(w.copy()))
                layer.bias.copy_(torch.from_numpy(b.copy()))
        return net


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
