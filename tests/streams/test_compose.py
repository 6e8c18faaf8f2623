"""docker-compose.yml and the Dockerfile: they parse, and every service is wired to one broker."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.commands import add_commands
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DISPATCH_SERVICES = ("worker", "dataset-writer")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file (YAML anchors and merge keys resolved)."""
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, so anchors merge"
    return {k: str(v) for k, v in env.items()}


def test_kafka_is_apache_3_9_in_kraft_mode(compose: dict[str, Any]) -> None:
    """The broker is the Apache Kafka 3.9.x image, combined broker+controller, no ZooKeeper."""
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:3.9.")
    env = _env(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert not any("ZOOKEEPER" in k for k in env)


def test_every_dispatch_service_uses_the_same_bootstrap(compose: dict[str, Any]) -> None:
    """worker and dataset writer share one bootstrap, which the broker advertises."""
    services = compose["services"]
    bootstraps = {_env(services[n])["DISPATCH_RL_BOOTSTRAP_SERVERS"] for n in DISPATCH_SERVICES}
    assert len(bootstraps) == 1
    [bootstrap] = bootstraps
    advertised = _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert any(listener.endswith(f"://{bootstrap}") for listener in advertised)
    host = bootstrap.split(":")[0]
    assert host in {"kafka", services["kafka"].get("hostname")}


def test_every_service_has_a_healthcheck_and_waits_for_kafka(compose: dict[str, Any]) -> None:
    """Health checks everywhere; the dispatch services start once the broker is healthy."""
    services = compose["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), name
    for name in DISPATCH_SERVICES:
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert services[name]["build"] == "."


def test_environment_is_valid_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's DISPATCH_RL_* variables are fields the settings accept."""
    known = {f"DISPATCH_RL_{name.upper()}" for name in Settings.model_fields}
    for name in DISPATCH_SERVICES:
        env = _env(compose["services"][name])
        assert set(env) <= known, set(env) - known
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        assert settings.bootstrap_servers == env["DISPATCH_RL_BOOTSTRAP_SERVERS"]


def test_commands_parse_and_split_the_roles(compose: dict[str, Any]) -> None:
    """The worker runs only the optimizer, the dataset writer only the writer."""
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    worker = parser.parse_args(compose["services"]["worker"]["command"])
    writer = parser.parse_args(compose["services"]["dataset-writer"]["command"])
    assert (worker.command, worker.optimizer_only, worker.dataset_only) == ("run", True, False)
    assert (writer.command, writer.optimizer_only, writer.dataset_only) == ("run", False, True)


def test_dockerfile_builds_the_cli_image() -> None:
    """The image installs the three packages and runs the `dispatch-rl` CLI module."""
    text = (ROOT / "Dockerfile").read_text()
    for package in ("schemas", "optimizer", "streams"):
        assert f"COPY {package} ./{package}" in text
    assert 'ENTRYPOINT ["python", "-m", "streams.cli"]' in text
    assert (ROOT / "streams" / "cli.py").is_file()


def test_broker_and_services_keep_their_data_and_create_topics_on_purpose(
    compose: dict[str, Any],
) -> None:
    """No auto-created topics, no broker-wide retention cut, and every durable path on a named
    volume (broker data; the services' /data with dataset, audit store and models)."""
    services = compose["services"]
    kafka = _env(services["kafka"])
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert kafka["KAFKA_LOG_RETENTION_MS"] == "-1"
    assert any(v.endswith(":" + kafka["KAFKA_LOG_DIRS"]) for v in services["kafka"]["volumes"])
    named = set(compose["volumes"])
    for name in DISPATCH_SERVICES:
        env = _env(services[name])
        mounts = dict(v.split(":", 1)[::-1] for v in services[name]["volumes"])
        assert mounts.get(env["DISPATCH_RL_DATA_DIR"]) in named, name
        for key in ("DISPATCH_RL_DATASET_DIR", "DISPATCH_RL_MODEL_DIR", "DISPATCH_RL_STATE_DIR"):
            assert env[key].startswith(env["DISPATCH_RL_DATA_DIR"] + "/"), key
        assert env["DISPATCH_RL_TOPIC_RETENTION_MS"] == "-1"
