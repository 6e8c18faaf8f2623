"""Pytest plugin: the ``kafka_bootstrap`` fixture, one real Kafka broker per test session.

Load it with ``pytest_plugins = ["tests.kafka_broker"]`` in ``tests/conftest.py``.

Where the broker comes from, first match wins:

1. ``KAFKA_BOOTSTRAP_SERVERS`` is set: that broker (it must answer a Metadata request).
2. A Docker engine answers: a testcontainers ``KafkaContainer`` (Confluent 7.9 = Kafka 3.9,
   KRaft).
3. Otherwise the project's local launcher (``streams.local_kafka.LocalKafka``: Kafka 3.9.1 from
   Maven jars; needs Java 17+, and Maven for the first download), ephemeral (a temporary data
   dir and free ports) and, like the durable one, without topic auto-creation: tests create
   their topics (``streams.topics.ensure_topics``, or an admin client).

If none works the requesting tests fail with every reason: Kafka tests are never skipped, in CI
(``CI=true``) or anywhere else. The terminal summary says which broker was used.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from streams.local_kafka import KAFKA_VERSION, KafkaLaunchError, LocalKafka, cluster_metadata

# Confluent Platform 7.9.x ships Apache Kafka 3.9, the same line as the local launcher.
CP_KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.1"

_BROKER_USED = pytest.StashKey[str]()


def _docker_unavailable() -> str | None:
    """None if a Docker engine answers a ping, else why not (any failure means no Docker)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # no engine, no socket, no permission, no docker package...
        return repr(exc)
    return None


def pytest_report_header(config: pytest.Config) -> str:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        return f"kafka: KAFKA_BOOTSTRAP_SERVERS={external}"
    return (
        "kafka: started on first use: testcontainers if a Docker engine answers, "
        "else the local launcher (streams.local_kafka)"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    used = terminalreporter.config.stash.get(_BROKER_USED, None)
    if used is not None:
        terminalreporter.write_line(f"kafka broker used: {used}")


@pytest.fixture(scope="session")
def kafka_bootstrap(pytestconfig: pytest.Config) -> Iterator[str]:
    """Bootstrap address (``host:port``) of a Kafka broker that answers, for the whole session.

    Topics are shared across tests: use unique topic and group names per test.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        try:
            cluster_metadata(external, timeout=10.0)
        except (ConnectionError, ValueError) as exc:
            pytest.fail(
                f"KAFKA_BOOTSTRAP_SERVERS={external} does not answer a Kafka Metadata request: "
                f"{exc}",
                pytrace=False,
            )
        pytestconfig.stash[_BROKER_USED] = f"external, KAFKA_BOOTSTRAP_SERVERS={external}"
        yield external
        return

    reasons: list[str] = []

    docker_reason = _docker_unavailable()
    if docker_reason is None:
        from testcontainers.community.kafka import KafkaContainer

        container = KafkaContainer(CP_KAFKA_IMAGE).with_kraft()
        try:
            container.start()
            bootstrap = container.get_bootstrap_server()
        except Exception as exc:
            reasons.append(f"testcontainers ({CP_KAFKA_IMAGE}): {exc!r}")
            with contextlib.suppress(Exception):
                container.stop()
        else:
            pytestconfig.stash[_BROKER_USED] = f"testcontainers {CP_KAFKA_IMAGE} at {bootstrap}"
            try:
                yield bootstrap
            finally:
                container.stop()
            return
    else:
        reasons.append(f"testcontainers: no Docker engine answers ({docker_reason})")

    kafka = LocalKafka()
    try:
        kafka.start()
    except (KafkaLaunchError, OSError) as exc:
        reasons.append(f"local launcher (streams.local_kafka): {exc}")
    else:
        pytestconfig.stash[_BROKER_USED] = (
            f"local launcher (streams.local_kafka), Kafka {KAFKA_VERSION} "
            f"at {kafka.bootstrap} (pid {kafka.pid})"
        )
        try:
            yield kafka.bootstrap
        finally:
            kafka.stop()
        return

    where = "in CI (CI=true), where " if os.environ.get("CI") == "true" else ""
    pytest.fail(
        "no Kafka broker for the tests that need one; "
        f"{where}Kafka tests fail rather than skip. Set KAFKA_BOOTSTRAP_SERVERS, start a Docker "
        "engine, or install Java 17+ and Maven for the local launcher.\n  - "
        + "\n  - ".join(reasons),
        pytrace=False,
    )
