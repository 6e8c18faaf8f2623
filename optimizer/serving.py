"""Which move policy serves a dispatch: the plug point between the model registry and the worker.

The worker asks `provider.policy()` once per dispatch and calls `provider.refresh()`
periodically (hot reload). A provider never raises from `policy()`: with no usable model the
greedy policy serves, and the policy's `version` says so (it is stamped on every `Optimized`).

Serving is torch-free: the registry stores numpy weights and the DQN policy scores with a
numpy forward pass, so a worker installed without the `[train]` extra serves the learned
policy (tests/optimizer/test_serving_without_torch.py checks that torch is never imported).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from optimizer import kernels
from optimizer.policy import GreedyPolicy
from optimizer.registry import (
    DEFAULT_MODEL_DIR,
    ModelLoadError,
    ModelRegistry,
    RegistryError,
    load_model,
)
from optimizer.swap_pass import MovePolicy

log = structlog.get_logger("dispatch_rl.serving")


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
    return RegistryPolicyProvider(model_dir)


class RegistryPolicyProvider:
    """Serves the registry's champion; hot-reloads it; never raises from `policy()`.

    Order of preference: the champion, the shipped default model (`default_dir`; None to go
    without), the greedy policy. `refresh()` re-reads the champion pointer; a new champion that
    fails to load (corrupt, edited, or failing the quality check) is logged, `status()` says
    why, and the current policy keeps serving.
    """

    def __init__(self, model_dir: Path, *, default_dir: Path | None = DEFAULT_MODEL_DIR) -> None:
        self.registry = ModelRegistry(model_dir)
        self.default_dir = default_dir
        self._lock = threading.Lock()
        self._policy: MovePolicy = GreedyPolicy()
        self._source = "greedy"
        self._seen_pointer: str | None = None
        self._last_error: str | None = None
        self._loaded_at = datetime.now(UTC).isoformat()
        with self._lock:
            self._initial()

    def policy(self) -> MovePolicy:
        return self._policy

    def refresh(self) -> bool:
        """Pick up a newly promoted (or rolled-back) champion; True when the policy changed."""
        with self._lock:
            pointer = self._pointer_key()
            if pointer == self._seen_pointer:
                return False
            self._seen_pointer = pointer
            try:
                doc = self.registry.read_pointer()
            except RegistryError as exc:  # never drop a good model for a bad pointer file
                self._last_error = str(exc)
                log.error(
                    "champion_pointer_unreadable", error=str(exc), serving=self._policy.version
                )
                return False
            version = str(doc["version"]) if doc and doc.get("version") else None
            if version is None:
                if self._source == "registry":  # rolled back to the shipped default
                    return self._fallback("no champion (rolled back to the shipped default)")
                return False
            if self._source == "registry" and version == self._policy.version:
                return False
            try:
                loaded = self.registry.load(version)
            except ModelLoadError as exc:
                self._last_error = str(exc)
                log.error(
                    "model_load_failed",
                    version=version,
                    error=str(exc),
                    serving=self._policy.version,
                )
                return False
            self._last_error = None
            self._serve(loaded.policy(), "registry")
            log.info("model_loaded", version=version, source="registry")
            return True

    def status(self) -> dict[str, Any]:
        """What serves now: `source` is `registry`, `default` or `greedy`; `last_error` says
        why a model was refused (no absolute paths: health shows it)."""
        return {
            "model_version": self._policy.version,
            "source": self._source,
            "champion": self.registry.champion(),
            "last_error": self._last_error,
            "loaded_at": self._loaded_at,
            "pass_loops": kernels.describe(),
            "note": (
                "greedy policy: no usable model (registry empty and no shipped default)"
                if self._source == "greedy"
                else None
            ),
        }

    # ---- internals

    def _initial(self) -> None:
        # One line saying which code runs the pass's loops (a failed build must not be silent).
        if kernels.compiled is None and "not built" in kernels.describe():
            log.warning("pass_loops", path=kernels.describe())
        else:
            log.info("pass_loops", path=kernels.describe())
        self._seen_pointer = self._pointer_key()
        version = self.registry.champion()
        if version is not None:
            try:
                self._serve(self.registry.load(version).policy(), "registry")
                log.info("model_loaded", version=version, source="registry")
                return
            except ModelLoadError as exc:
                self._last_error = str(exc)
                log.error("model_load_failed", version=version, error=str(exc))
        self._fallback("no usable champion")

    def _fallback(self, why: str) -> bool:
        before = self._policy.version
        if self.default_dir is not None:
            try:
                loaded = load_model(self.default_dir)
                self._serve(loaded.policy(), "default")
                log.info("model_loaded", version=loaded.version, source="default", why=why)
                return before != self._policy.version
            except ModelLoadError as exc:
                self._last_error = str(exc)
                log.error("default_model_load_failed", error=str(exc))
        self._serve(GreedyPolicy(), "greedy")
        log.warning("serving_greedy", why=why)
        return before != self._policy.version

    def _serve(self, policy: MovePolicy, source: str) -> None:
        self._policy = policy  # one reference assignment: readers see the old or the new
        self._source = source
        self._loaded_at = datetime.now(UTC).isoformat()

    def _pointer_key(self) -> str | None:
        try:
            return self.registry.champion_file.read_text()
        except OSError:
            return None
