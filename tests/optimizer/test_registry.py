"""The model registry: versions, atomic champion switch, refusal of bad files, hot reload."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from optimizer.dispatch import DispatchConfig
from optimizer.dqn.features import N_FEATURES
from optimizer.dqn.inference import MlpWeights
from optimizer.learn_cli import add_commands
from optimizer.policy import GREEDY_VERSION
from optimizer.registry import (
    DEFAULT_MODEL_DIR,
    ModelLoadError,
    ModelRegistry,
    RegistryError,
    load_model,
)
from optimizer.serving import RegistryPolicyProvider
from tests.models import random_weights, ranking_weights


def net(seed: int) -> MlpWeights:
    """A model that passes the quality check; each seed gives other bytes."""
    return ranking_weights(1.0, seed)


def ranking_net(sign: float) -> MlpWeights:
    return ranking_weights(sign)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """An empty registry in a temporary directory."""
    return ModelRegistry(tmp_path / "models")


def test_save_then_load_round_trips_with_metadata(registry: ModelRegistry) -> None:
    """Weights come back equal; metadata names architecture, features, parameters, hash."""
    version = registry.save(net(0), {"training": {"data_fingerprint": "abc"}})
    loaded = registry.load(version)
    for (w, b), (w0, b0) in zip(loaded.network.layers, net(0).layers, strict=True):
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_array_equal(b, b0)
    meta = loaded.metadata
    assert meta["version"] == version and meta["feature_version"] == "cand-v1"
    assert meta["architecture"] == {
        "kind": "candidate-mlp",
        "n_features": N_FEATURES,
        "hidden": [2],
    }
    assert meta["parameters"] == 2 * N_FEATURES + 2 + 3
    assert meta["training"]["data_fingerprint"] == "abc" and len(meta["weights_sha256"]) == 64
    assert loaded.policy().version == version


def test_corrupt_weights_are_refused(registry: ModelRegistry) -> None:
    """A flipped byte in the weights file fails the sha256 check."""
    version = registry.save(net(0), {})
    weights = registry.path(version) / "model.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="corrupt"):
        registry.load(version)


def test_incompatible_models_are_refused(registry: ModelRegistry) -> None:
    """Another feature version, another input width, or tensors that do not fit: refused."""
    v1 = registry.save(net(0), {})
    registry.update_metadata(v1, feature_version="cand-v0")
    with pytest.raises(ModelLoadError, match="feature version"):
        registry.load(v1)
    v2 = registry.save(net(1), {})
    meta = registry.metadata(v2)
    registry.update_metadata(v2, architecture={**meta["architecture"], "hidden": [16]})
    with pytest.raises(ModelLoadError, match="do not fit"):
        registry.load(v2)
    v3 = registry.save(net(2), {})
    (registry.path(v3) / "metadata.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable metadata"):
        registry.load(v3)


def test_champion_switch_and_rollback_down_to_the_shipped_default(
    registry: ModelRegistry,
) -> None:
    """Promotion pushes the old champion on the history; rollback pops it, and the last
    rollback returns to the shipped default (no champion)."""
    a, b = registry.save(net(0), {}), registry.save(net(1), {})
    registry.set_champion(a)
    registry.set_champion(b)
    assert registry.champion() == b
    assert registry.rollback() == a and registry.champion() == a
    assert registry.rollback() == "default" and registry.champion() is None
    with pytest.raises(RegistryError, match="shipped default"):
        registry.rollback()
    registry.set_champion(b)
    assert registry.rollback(to_default=True) == "default" and registry.champion() is None
    assert not list(registry.root.glob(".champion.json.*"))  # no temporary file left behind


def test_edited_champion_is_refused_even_with_matching_metadata(registry: ModelRegistry) -> None:
    """Weights edited after promotion, metadata sha256 edited to match: the pointer's
    record still refuses them."""
    a = registry.save(net(0), {})
    registry.set_champion(a)
    other = net(5).to_bytes()
    (registry.path(a) / "model.npz").write_bytes(other)
    registry.update_metadata(a, weights_sha256=hashlib.sha256(other).hexdigest())
    with pytest.raises(ModelLoadError, match="edited after promotion"):
        registry.load(a)


def test_a_model_failing_the_quality_check_is_refused(registry: ModelRegistry) -> None:
    """A network that loads but ranks badly (backwards, or random) is refused, with why."""
    for weights in (ranking_net(-1.0), random_weights(0)):
        version = registry.save(weights, {})
        with pytest.raises(ModelLoadError, match="quality check failed"):
            registry.load(version)
        with pytest.raises(ModelLoadError):
            registry.set_champion(version)
        assert registry.load(version, check_quality=False).version == version


def test_cannot_point_the_champion_at_a_broken_model(registry: ModelRegistry) -> None:
    """`set_champion` loads the model first, so the pointer never names a broken one."""
    version = registry.save(net(0), {})
    (registry.path(version) / "model.npz").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError):
        registry.set_champion(version)
    assert registry.champion() is None


def test_provider_hot_reloads_a_promoted_model(registry: ModelRegistry) -> None:
    """A running provider serves the new champion after `refresh()`, no restart."""
    a, b = registry.save(net(0), {}), registry.save(net(1), {})
    registry.set_champion(a)
    provider = RegistryPolicyProvider(registry.root, default_dir=None)
    assert provider.policy().version == a and provider.status()["source"] == "registry"
    assert provider.refresh() is False  # nothing changed
    registry.set_champion(b)
    assert provider.refresh() is True
    assert provider.policy().version == b
    registry.rollback()
    assert provider.refresh() is True and provider.policy().version == a


def test_provider_keeps_serving_when_the_new_model_is_bad(registry: ModelRegistry) -> None:
    """A champion that fails to load is logged; the previous model keeps serving."""
    a, b = registry.save(net(0), {}), registry.save(net(1), {})
    registry.set_champion(a)
    provider = RegistryPolicyProvider(registry.root, default_dir=None)
    registry.set_champion(b)
    (registry.path(b) / "model.npz").write_bytes(b"corrupted after promotion")
    assert provider.refresh() is False
    assert provider.policy().version == a
    status = provider.status()
    assert status["champion"] == b and "corrupt" in status["last_error"]
    assert str(registry.root) not in status["last_error"]  # health shows it: no paths


def test_provider_refuses_a_hand_edited_model_that_fails_the_quality_check(
    registry: ModelRegistry,
) -> None:
    """A champion whose weights were replaced by a bad network (sha256 updated everywhere,
    as a careful hand edit would) is refused at load; the previous model keeps serving."""
    a, b = registry.save(net(0), {}), registry.save(net(1), {})
    registry.set_champion(a)
    provider = RegistryPolicyProvider(registry.root, default_dir=None)
    registry.set_champion(b)
    bad = ranking_net(-1.0).to_bytes()
    digest = hashlib.sha256(bad).hexdigest()
    (registry.path(b) / "model.npz").write_bytes(bad)
    registry.update_metadata(b, weights_sha256=digest)
    doc = registry.pointer()
    doc["checksums"][b] = doc["weights_sha256"] = digest
    registry.champion_file.write_text(json.dumps(doc))
    assert provider.refresh() is False
    assert provider.policy().version == a
    assert "quality check failed" in provider.status()["last_error"]


def test_provider_returns_to_the_shipped_default_on_rollback(registry: ModelRegistry) -> None:
    """Rolling back past the first champion serves the shipped default again, hot."""
    a = registry.save(net(0), {})
    registry.set_champion(a)
    provider = RegistryPolicyProvider(registry.root)
    assert provider.status()["source"] == "registry"
    registry.rollback()
    assert provider.refresh() is True
    assert provider.status()["source"] == "default"
    assert provider.policy().version == load_model(DEFAULT_MODEL_DIR).version


def test_no_model_at_all_serves_greedy_and_says_so(registry: ModelRegistry) -> None:
    """Empty registry and no shipped default: greedy serves, the status says why."""
    provider = RegistryPolicyProvider(registry.root, default_dir=None)
    assert provider.policy().version == GREEDY_VERSION
    status = provider.status()
    assert status["source"] == "greedy" and "no usable model" in status["note"]


def test_empty_registry_falls_back_to_the_shipped_model(registry: ModelRegistry) -> None:
    """The package ships a default model, and it serves when the registry is empty."""
    assert (DEFAULT_MODEL_DIR / "metadata.json").exists(), "the shipped default model is missing"
    provider = RegistryPolicyProvider(registry.root)
    assert provider.status()["source"] == "default"
    assert provider.policy().version == load_model(DEFAULT_MODEL_DIR).version


# ------------------------------------------------------------------ CLI


def run(argv: list[str], model_dir: Path) -> int:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    settings = SimpleNamespace(
        model_dir=model_dir, dataset_dir=model_dir / "none", dispatch_config=DispatchConfig
    )
    code: int = args.handler(args, settings)
    return code


@pytest.mark.slow
def test_promote_runs_the_gate_and_force_overrides_it(
    registry: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """`models promote`: a model failing the quality check is refused outright; a model the
    gate finds not worse is promoted with the gate table; a gate refusal can be forced (and is
    recorded); rollback undoes."""
    from optimizer.evaluate_cli import promote
    from optimizer.gate import GateConfig

    # `same` ranks exactly like `good` (scores doubled), in other bytes
    good, same, bad = (
        registry.save(w, {}) for w in (ranking_net(1.0), ranking_net(2.0), ranking_net(-1.0))
    )
    registry.set_champion(good)
    argv = ["--per-class", "1", "--kinds", "generated", "--exact-time-limit", "2"]
    assert run(["models", "promote", bad, *argv], registry.root) == 1
    assert "quality check failed" in capsys.readouterr().err
    assert run(["models", "promote", same, *argv], registry.root) == 0
    out = capsys.readouterr().out
    assert "promoted" in out and "| proven-optimum rate |" in out
    assert registry.champion() == same
    settings = SimpleNamespace(model_dir=registry.root, dispatch_config=DispatchConfig)
    impossible = GateConfig(optimum_rate_slack=-1.0)  # candidate must beat 100 % + 1
    code, note = promote(
        registry, good, settings, force=False, per_class=1, kinds=("generated",),
        exact_time_limit_s=2, gate_config=impossible,
    )  # fmt: skip
    assert code == 1 and "not promoted" in note and registry.champion() == same
    code, note = promote(
        registry, good, settings, force=True, per_class=1, kinds=("generated",),
        exact_time_limit_s=2, gate_config=impossible,
    )  # fmt: skip
    assert code == 0 and "FORCED" in note and registry.champion() == good
    assert registry.metadata(good)["promotion"]["forced"] is True
    assert run(["models", "rollback"], registry.root) == 0
    assert registry.champion() == same


def test_models_list_marks_the_champion(
    registry: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """`models list --json` lists every version and what serves."""
    a = registry.save(net(0), {})
    registry.set_champion(a)
    capsys.readouterr()
    assert run(["models", "list", "--json"], registry.root) == 0
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{\n") :])  # structlog may print lines before it
    assert [m["version"] for m in doc["models"]] == [a] and doc["models"][0]["champion"]
    assert doc["serving"]["model_version"] == a


def test_unreadable_pointer_keeps_the_current_model(registry: ModelRegistry) -> None:
    """A torn or garbled champion pointer is logged; the served model stays."""
    a = registry.save(net(0), {})
    registry.set_champion(a)
    provider = RegistryPolicyProvider(registry.root, default_dir=None)
    registry.champion_file.write_text('{"version": "dqn-')
    assert provider.refresh() is False
    assert provider.policy().version == a
    assert "unreadable" in str(provider.status()["last_error"])
