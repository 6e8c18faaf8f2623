"""Which move policy serves a dispatch: the plug point between the model registry and the worker.

The worker asks `provider.policy()` once per dispatch and calls `provider.refresh()`
periodically (hot reload). A provider never raises from `policy()`: with no usable model the
greedy policy serves, and the policy's `version` says so (it is stamped on every `Optimized`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from optimizer.policy import GreedyPolicy
from optimizer.swap_pass import MovePolicy


class PolicyProvider(Protocol):
    def policy(self) -> MovePolicy:
        """The policy to serve now (cheap; called per dispatch)."""
        ...

    def refresh(self) -> bool:
        """Look for a newly promoted model; True when the served policy changed."""
        ...


class StaticPolicyProvider:
    """Always the same policy (tests, and the greedy-only configuration)."""

    def __init__(self, policy: MovePolicy | None = None) -> None:
        self._policy: MovePolicy = policy or GreedyPolicy()

    def policy(self) -> MovePolicy:
        return self._policy

    def refresh(self) -> bool:
        return False


def default_provider(model_dir: Path) -> PolicyProvider:
    """The provider a worker uses: the registry's champion, else the shipped model, else greedy."""
    try:
        from optimizer.registry import RegistryPolicyProvider
    except ImportError:  # the learned policy is optional at this layer
        return StaticPolicyProvider()
    provider: PolicyProvider = RegistryPolicyProvider(model_dir)
    return provider
