"""The model registry: versioned DQN models, a champion pointer switched atomically, hot reload.

Layout under the registry root (`settings.model_dir`)::

    versions/<version>/model.npz       the Q-network's weights (numpy arrays, no pickle)
    versions/<version>/metadata.json   architecture, feature version, parameters, training data
                                       fingerprint, weights sha256, evaluation metrics
    champion.json                      {"version": ..., "weights_sha256": ..., "history": [...]}

A version directory is written under a temporary name and renamed into place, and the champion
pointer is replaced with `os.replace`, so a reader never sees half a model or half a pointer.
The pointer records the champion's weights sha256 at promotion: a model whose bytes were edited
afterwards is refused even if its own metadata was edited to match.

`load_model` refuses a model whose metadata is unreadable, whose format, architecture or
feature version this code does not speak, whose weights do not match their recorded sha256,
whose arrays do not fit the network, or that fails the quality check on the built-in days
(`optimizer.dqn.quality`): `ModelLoadError` says which. Nothing here imports torch: the weights
are served by the numpy forward pass (`optimizer.dqn.inference`). Serving (champion, shipped
default, greedy; hot reload) is `optimizer.serving.RegistryPolicyProvider`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from optimizer.dqn.features import FEATURE_NAMES, FEATURE_VERSION, N_FEATURES
from optimizer.dqn.inference import MlpWeights, WeightsError, load_npz
from optimizer.dqn.policy import RANKINGS, DQNPolicy

log = structlog.get_logger("dispatch_rl.registry")

MODEL_FORMAT = "dispatch-rl-dqn/2"
"""/2: numpy `.npz` weights (served without torch). /1 (torch `model.pt`) is not read any more:
re-export such a model with torch (`QNetwork.load_state_dict` then `weights()`)."""
WEIGHTS_FILE = "model.npz"
METADATA_FILE = "metadata.json"
CHAMPION_FILE = "champion.json"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "default"
"""The model shipped with the package: serves when the registry has no usable champion."""
DEFAULT_VERSION_ALIAS = "default"
"""What `rollback` and the champion history call the shipped default model."""


class ModelLoadError(Exception):
    """A model that must not serve: unreadable, corrupt, or incompatible with this code."""


class RegistryError(Exception):
    """A registry operation that cannot be done (unknown version, nothing to roll back to)."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    network: MlpWeights
    metadata: dict[str, Any]
    path: Path

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def weights_sha256(self) -> str:
        return str(self.metadata["weights_sha256"])

    def policy(self) -> DQNPolicy:
        """The served policy; `metadata["ranking"]` says how Q-values rank (default `q`)."""
        return DQNPolicy(self.network, self.version, ranking=str(self.metadata.get("ranking", "q")))


# ------------------------------------------------------------------ one model directory


def write_model(
    directory: Path, network: MlpWeights, metadata: Mapping[str, Any], version: str | None = None
) -> str:
    """Write `network` and its metadata as a model directory (atomically); returns the version.

    `metadata` holds the caller's part (training, evaluation, ...); the format, architecture,
    feature version, parameter count and weights hash are filled in here. A torch `QNetwork`
    is exported with `QNetwork.weights()` first.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        data = network.to_bytes()
        (tmp / WEIGHTS_FILE).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        version = version or f"dqn-{datetime.now(UTC):%Y%m%d-%H%M%S}-{digest[:8]}"
        meta = dict(metadata)
        meta.update(
            format=MODEL_FORMAT,
            version=version,
            created_at=meta.get("created_at") or datetime.now(UTC).isoformat(),
            architecture=network.architecture(),
            feature_version=FEATURE_VERSION,
            feature_names=list(FEATURE_NAMES),
            parameters=network.parameters,
            weights_file=WEIGHTS_FILE,
            weights_sha256=digest,
            numpy_version=np.__version__,
        )
        _write_json(tmp / METADATA_FILE, meta)
        if directory.exists():
            raise RegistryError(f"{directory} already exists")
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return version


def load_model(
    directory: Path, *, expected_sha256: str | None = None, check_quality: bool = True
) -> LoadedModel:
    """Load and check a model directory; raises `ModelLoadError` with the reason.

    `expected_sha256`: the registry's record of the weights (the champion pointer); the
    weights must match it as well as their own metadata. `check_quality`: run the built-in
    quality check (`optimizer.dqn.quality`; a few small days, tens of milliseconds).
    """
    directory = Path(directory)
    try:
        meta = json.loads((directory / METADATA_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{directory.name}: unreadable metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{directory.name}: metadata is not an object")
    if meta.get("format") != MODEL_FORMAT:
        raise ModelLoadError(
            f"{directory.name}: format {meta.get('format')!r}, need {MODEL_FORMAT!r}"
        )
    if meta.get("feature_version") != FEATURE_VERSION:
        raise ModelLoadError(
            f"{directory.name}: feature version {meta.get('feature_version')!r}, this code "
            f"computes {FEATURE_VERSION!r}"
        )
    if "version" not in meta:
        raise ModelLoadError(f"{directory.name}: metadata has no version")
    if meta.get("ranking", "q") not in RANKINGS:
        raise ModelLoadError(f"{directory.name}: unknown ranking {meta.get('ranking')!r}")
    arch = meta.get("architecture")
    if not isinstance(arch, dict) or arch.get("n_features") != N_FEATURES:
        raise ModelLoadError(
            f"{directory.name}: architecture {arch!r} does not take {N_FEATURES} features"
        )
    name = str(meta.get("weights_file", WEIGHTS_FILE))
    if "/" in name or "\\" in name or name.startswith("."):
        raise ModelLoadError(f"{directory.name}: weights file {name!r} is not a plain file name")
    weights = directory / name
    try:
        data = weights.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{directory.name}: unreadable weights: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta.get("weights_sha256"):
        raise ModelLoadError(
            f"{directory.name}: weights sha256 {digest[:12]} does not match the "
            f"metadata's {str(meta.get('weights_sha256'))[:12]}: corrupt or edited file"
        )
    if expected_sha256 is not None and digest != expected_sha256:
        raise ModelLoadError(
            f"{directory.name}: weights sha256 {digest[:12]} does not match the registry's "
            f"record {expected_sha256[:12]} (champion pointer): edited after promotion"
        )
    try:
        network = load_npz(weights, arch)
    except (WeightsError, ValueError, OSError, KeyError) as exc:
        raise ModelLoadError(f"{directory.name}: weights do not fit the network: {exc}") from exc
    probe = network(np.zeros((2, N_FEATURES), dtype=np.float32))
    if not bool(np.isfinite(probe).all()):
        raise ModelLoadError(f"{directory.name}: the network outputs non-finite values")
    loaded = LoadedModel(network, meta, directory)
    if check_quality:
        from optimizer.dqn.quality import check_quality as run_check

        verdict = run_check(loaded.policy())
        if not verdict.passed:
            raise ModelLoadError(f"{directory.name}: quality check failed: {verdict.reason}")
    return loaded


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

    def save(self, network: MlpWeights, metadata: Mapping[str, Any]) -> str:
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

    def load(self, version: str, *, check_quality: bool = True) -> LoadedModel:
        """Load a version; the champion is also checked against the pointer's checksum."""
        if not self.path(version).is_dir():
            raise ModelLoadError(f"no model version {version!r} in the registry")
        recorded = self.pointer().get("checksums", {})
        expected = recorded.get(version) if isinstance(recorded, dict) else None
        return load_model(
            self.path(version),
            expected_sha256=str(expected) if expected else None,
            check_quality=check_quality,
        )

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
        """Make `version` the champion (atomic switch); the old one goes on the history.

        The first promotion puts the shipped default on the history, so `rollback` can
        always return to it. The weights' sha256 is recorded in the pointer.
        """
        loaded = self.load(version)  # never point at a model that cannot serve
        doc = self.pointer()
        history = [str(h) for h in doc.get("history", [])]
        current = doc.get("version") or DEFAULT_VERSION_ALIAS
        if current != version:
            history.append(str(current))
        checksums = dict(doc.get("checksums") or {})
        checksums[version] = loaded.weights_sha256
        self._write_pointer(version, history, reason, checksums)

    def rollback(self, *, to_default: bool = False) -> str:
        """Switch back to the previous champion (or straight to the shipped default); returns
        the version now serving, `default` for the shipped model."""
        doc = self.pointer()
        current = doc.get("version")
        history = [str(h) for h in doc.get("history", [])]
        checksums = dict(doc.get("checksums") or {})
        if not current:
            raise RegistryError("already serving the shipped default model: nothing to roll back")
        reason = f"rollback from {current}"
        if to_default or not history:
            self._write_pointer(None, [], reason + " to the shipped default", checksums)
            return DEFAULT_VERSION_ALIAS
        previous = history.pop()
        if previous == DEFAULT_VERSION_ALIAS:
            self._write_pointer(None, history, reason, checksums)
            return DEFAULT_VERSION_ALIAS
        self.load(previous)  # the previous champion must still be servable
        self._write_pointer(previous, history, reason, checksums)
        return previous

    def _write_pointer(
        self, version: str | None, history: list[str], reason: str, checksums: dict[str, Any]
    ) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json(
            self.champion_file,
            {
                "version": version,
                "weights_sha256": checksums.get(version) if version else None,
                "checksums": checksums,
                "history": history,
                "reason": reason,
                "switched_at": datetime.now(UTC).isoformat(),
            },
        )


# ------------------------------------------------------------------ helpers


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
