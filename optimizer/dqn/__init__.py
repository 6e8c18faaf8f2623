"""The learned move policy: features, Q-network, replay buffer, Gymnasium env, training loop.

Serving needs only `DQNPolicy`, the features and the numpy forward pass (`MlpWeights`); the
training pieces (`QNetwork`, `ReplayBuffer`, `train`, ...) import torch, which is an optional
extra (`dispatch-rl[train]`). So every name here is imported on first use (PEP 562): importing
`optimizer.dqn.policy` in a worker never loads torch or gymnasium. (The training loop
itself is `optimizer.dqn.train.train`: a lazy `train` here would clash with the submodule.)
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "FEATURE_NAMES": "features",
    "FEATURE_VERSION": "features",
    "N_FEATURES": "features",
    "DQNPolicy": "policy",
    "Day": "days",
    "DispatchEnv": "env",
    "MlpWeights": "inference",
    "QNetwork": "network",
    "ReplayBatch": "replay",
    "ReplayBuffer": "replay",
    "RewardConfig": "env",
    "TrainConfig": "train",
    "TrainResult": "train",
    "candidate_features": "features",
    "linear_schedule": "train",
    "parameter_count": "network",
    "polyak_update": "network",
    "td_target": "train",
}

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_VERSION",
    "N_FEATURES",
    "DQNPolicy",
    "Day",
    "DispatchEnv",
    "MlpWeights",
    "QNetwork",
    "ReplayBatch",
    "ReplayBuffer",
    "RewardConfig",
    "TrainConfig",
    "TrainResult",
    "candidate_features",
    "linear_schedule",
    "parameter_count",
    "polyak_update",
    "td_target",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'optimizer.dqn' has no attribute {name!r}")
    return getattr(importlib.import_module(f"optimizer.dqn.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
