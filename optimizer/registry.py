"""The model registry: versioned DQN models, a champion pointer switched atomically, hot reload.

Layout under the registry root (`settings.model_dir`)::

    versions/<version>/model.pt        the Q-network's state dict (torch.save)
    versions/<version>/metadata.json   architecture, feature version, parameters, training data
                                       fingerprint, weights sha256, evaluation metrics
    champion.json                      {"version": ..., "history": [older champions], ...}

A version directory is written under a temporary name and renamed into place, and the champion
pointer is replaced with `os.replace`, so a reader never sees half a model or half a pointer.

`load_model` refuses a model whose metadata is unreadable, whose format, architecture or
feature version this code does not speak, whose weights do not match their recorded sha256, or
whose tensors do not fit the network: `ModelLoadError` says which. `RegistryPolicyProvider`
serves the champion, falls back to the model shipped in `optimizer/models/default/`, then to
the greedy policy, and on `refresh()` keeps serving what it has when a new champion fails to
load (logged).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
import torch

from optimizer.dqn.features import FEATURE_NAMES, FEATURE_VERSION, N_FEATURES
from optimizer.dqn.network import QNetwork, build_network, parameter_count
from optimizer.dqn.policy import DQNPolicy
from optimizer.policy import GreedyPolicy
from optimizer.swap_pass import MovePolicy

log = structlog.get_logger("dispatch_rl.registry")

MODEL_FORMAT = "dispatch-rl-dqn/1"
WEIGHTS_FILE = "model.pt"
METADATA_FILE = "metadata.json"
CHAMPION_FILE = "champion.json"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
"""The model shipped with the package: serves when the registry has no usable champion."""


class ModelLoadError(Exception):
    """A model that must not serve: unreadable, corrupt, or incompatible with this code."""


class RegistryError(Exception):
    """A registry operation that cannot be done (unknown version, nothing to roll back to)."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    network: QNetwork
    metadata: dict[str, Any]
    path: Path

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    def policy(self) -> DQNPolicy:
        return DQNPolicy(self.network, self.version)


# ------------------------------------------------------------------ one model directory


def write_model(
    directory: Path, network: QNetwork, metadata: Mapping[str, Any], version: str | None = None
) -> str:
    """Write `network` and its metadata as a model directory (atomically); returns the version.

    `metadata` holds the caller's part (training, evaluation, ...); the format, architecture,
    feature version, parameter count and weights hash are filled in here.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        weights = tmp / WEIGHTS_FILE
        torch.save(network.state_dict(), weights)
        digest = _sha256(weights)
        version = version or f"dqn-{datetime.now(UTC):%Y%m%d-%H%M%S}-{digest[:8]}"
        meta = dict(metadata)
        meta.update(
            format=MODEL_FORMAT,
            version=version,
            created_at=meta.get("created_at") or datetime.now(UTC).isoformat(),
            architecture=network.architecture(),
            feature_version=FEATURE_VERSION,
            feature_names=list(FEATURE_NAMES),
            parameters=parameter_count(network),
            weights_file=WEIGHTS_FILE,
            weights_sha256=digest,
            torch_version=torch.__version__,
        )
        _write_json(tmp / METADATA_FILE, meta)
        if directory.exists():
            raise RegistryError(f"{directory} already exists")
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return version


def load_model(directory: Path) -> LoadedModel:
    """Load and check a model directory; raises `ModelLoadError` with the reason."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / METADATA_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{directory}: unreadable metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{directory}: metadata is not an object")
    if meta.get("format") != MODEL_FORMAT:
        raise ModelLoadError(f"{directory}: format {meta.get('format')!r}, need {MODEL_FORMAT!r}")
    if meta.get("feature_version") != FEATURE_VERSION:
        raise ModelLoadError(
            f"{directory}: feature version {meta.get('feature_version')!r}, this code computes "
            f"{FEATURE_VERSION!r}"
        )
    if "version" not in meta:
        raise ModelLoadError(f"{directory}: metadata has no version")
    arch = meta.get("architecture")
    if not isinstance(arch, dict) or arch.get("n_features") != N_FEATURES:
        raise ModelLoadError(
            f"{directory}: architecture {arch!r} does not take {N_FEATURES} features"
        )
    weights = directory / str(meta.get("weights_file", WEIGHTS_FILE))
    try:
        digest = _sha256(weights)
    except OSError as exc:
        raise ModelLoadError(f"{directory}: unreadable weights: {exc}") from exc
    if digest != meta.get("weights_sha256"):
        raise ModelLoadError(
            f"{directory}: weights sha256 {digest[:12]} does not match the "
            f"metadata's {str(meta.get('weights_sha256'))[:12]}: corrupt file"
        )
    try:
        network = build_network(arch)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        network.load_state_dict(state, strict=True)
    except Exception as exc:  # torch raises many kinds for a bad file or mismatched tensors
        raise ModelLoadError(f"{directory}: weights do not fit the network: {exc}") from exc
    with torch.inference_mode():
        probe = network(torch.zeros(2, N_FEATURES))
    if not bool(torch.isfinite(probe).all()):
        raise ModelLoadError(f"{directory}: the network outputs non-finite values")
    return LoadedModel(network.eval(), meta, directory)


def update_model_metadata(directory: Path, **fields: Any) -> None:
    """Merge `fields` into a model directory's metadata (atomic replace; weights untouched)."""
    path = Path(directory) / METADATA_FILE
    meta = json.loads(path.read_text())
    meta.update(fields)
    _write_json(path, meta)


# ------------------------------------------------------------------ the registry


@dataclass(frozen=True, slots=True)
class ModelInfo:
    version: str
    path: Path
    metadata: dict[str, Any] | None
    """None when the metadata cannot be read (the model is listed, but cannot serve)."""
    champion: bool


class ModelRegistry:
    """Versions and the champion pointer under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.champion_file = self.root / CHAMPION_FILE

    def path(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise RegistryError(f"bad version name {version!r}")
        return self.versions_dir / version

    def save(self, network: QNetwork, metadata: Mapping[str, Any]) -> str:
        """Add a model as a new version (not promoted); returns the version."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        probe_version = metadata.get("version")
        if probe_version:
            return write_model(self.path(str(probe_version)), network, metadata, probe_version)
        tmp_name = f".new-{os.getpid()}-{time.monotonic_ns()}"
        version = write_model(self.versions_dir / tmp_name, network, metadata)
        os.replace(self.versions_dir / tmp_name, self.path(version))
        return version

    def versions(self) -> list[ModelInfo]:
        champion = self.champion()
        out = []
        if self.versions_dir.is_dir():
            for d in sorted(self.versions_dir.iterdir()):
                if not d.is_dir() or d.name.startswith("."):
                    continue
                try:
                    meta = json.loads((d / METADATA_FILE).read_text())
                except (OSError, ValueError):
                    meta = None
                out.append(
                    ModelInfo(
                        d.name, d, meta if isinstance(meta, dict) else None, d.name == champion
                    )
                )
        return out

    def metadata(self, version: str) -> dict[str, Any]:
        try:
            meta = json.loads((self.path(version) / METADATA_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise RegistryError(f"no readable model {version!r}: {exc}") from exc
        if not isinstance(meta, dict):
            raise RegistryError(f"model {version!r}: metadata is not an object")
        return meta

    def update_metadata(self, version: str, **fields: Any) -> None:
        """Merge `fields` into a version's metadata (atomic replace; weights untouched)."""
        self.metadata(version)  # raises RegistryError for an unknown version
        update_model_metadata(self.path(version), **fields)

    def load(self, version: str) -> LoadedModel:
        if not self.path(version).is_dir():
            raise ModelLoadError(f"no model version {version!r} in {self.versions_dir}")
        return load_model(self.path(version))

    # ---- champion pointer

    def pointer(self) -> dict[str, Any]:
        """The champion pointer document; {} when there is none or it cannot be read."""
        try:
            return self.read_pointer() or {}
        except RegistryError as exc:
            log.error("champion_pointer_unreadable", error=str(exc))
            return {}

    def read_pointer(self) -> dict[str, Any] | None:
        """The champion pointer document, None when absent; RegistryError when unreadable."""
        try:
            doc = json.loads(self.champion_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{self.champion_file}: unreadable: {exc}") from exc
        if not isinstance(doc, dict):
            raise RegistryError(f"{self.champion_file}: not an object")
        return doc

    def champion(self) -> str | None:
        version = self.pointer().get("version")
        return str(version) if version else None

    def set_champion(self, version: str, *, reason: str = "promote") -> None:
        """Make `version` the champion (atomic switch); the old one goes on the history."""
        load_model(self.path(version))  # never point at a model that cannot serve
        doc = self.pointer()
        history = list(doc.get("history", []))
        current = doc.get("version")
        if current and current != version:
            history.append(current)
        self._write_pointer(version, history, reason)

    def rollback(self) -> str:
        """Switch back to the previous champion; returns it."""
        doc = self.pointer()
        history = list(doc.get("history", []))
        if not history:
            raise RegistryError("no previous champion to roll back to")
        previous = str(history.pop())
        self._write_pointer(previous, history, f"rollback from {doc.get('version')}")
        return previous

    def _write_pointer(self, version: str, history: list[str], reason: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json(
            self.champion_file,
            {
                "version": version,
                "history": history,
                "reason": reason,
                "switched_at": datetime.now(UTC).isoformat(),
            },
        )


# ------------------------------------------------------------------ serving


class RegistryPolicyProvider:
    """Serves the registry's champion; hot-reloads it; never raises from `policy()`.

    Order of preference: the champion, the shipped default model (`default_dir`; None to go
    without), the greedy policy. `refresh()` re-reads the champion pointer; a new champion that
    fails to load is logged and the current policy keeps serving. `status()` says what serves
    and why (e.g. "greedy: no model").
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        default_dir: Path | None = DEFAULT_MODEL_DIR,
        torch_threads: int | None = 1,
    ) -> None:
        self.registry = ModelRegistry(model_dir)
        self.default_dir = default_dir
        if torch_threads is not None:
            # Scoring a few hundred rows per step: one thread is fastest and does not fight the
            # event loop or other processes for the second core.
            torch.set_num_threads(torch_threads)
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
                if self._source == "registry":  # the pointer was removed: back to the fallback
                    return self._fallback("champion pointer removed")
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
            self._serve(loaded.policy(), "registry")
            log.info("model_loaded", version=version, source="registry")
            return True

    def status(self) -> dict[str, Any]:
        """What serves now: `source` is `registry`, `default` or `greedy`."""
        return {
            "model_version": self._policy.version,
            "source": self._source,
            "champion": self.registry.champion(),
            "last_error": self._last_error,
            "loaded_at": self._loaded_at,
            "note": (
                "greedy policy: no usable model (registry empty and no shipped default)"
                if self._source == "greedy"
                else None
            ),
        }

    # ---- internals

    def _initial(self) -> None:
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


# ------------------------------------------------------------------ helpers


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, doc: Any) -> None:
    """Write JSON atomically: a temporary file in the same directory, fsync, `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; models and pointers are shared files
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
