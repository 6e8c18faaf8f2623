"""Integration tests of the local Kafka launcher and the ``kafka_bootstrap`` fixture.

They need a real broker (the fixture provides one; see tests/kafka_broker.py) and, for the
launcher's own tests, Java and the cached broker jars.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from streams.local_kafka import (
    KafkaLaunchError,
    LocalKafka,
    cluster_metadata,
    main,
    status,
    using,
)
from streams.local_kafka.config import cluster_id_of, new_cluster_id
from streams.local_kafka.process import free_ports

pytestmark = pytest.mark.kafka


async def _create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=30_000)
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10_000)
    await producer.start()
    try:
        for key, value in records:
            await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), 30)
    finally:
        await producer.stop()


async def _consume_all(
    bootstrap: str, topic: str, count: int, group: str
) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        got: list[tuple[bytes, bytes]] = []
        while len(got) < count:
            batches = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 60)
            got.extend((r.key, r.value) for batch in batches.values() for r in batch)
        await consumer.commit()
        return got
    finally:
        await consumer.stop()


def test_broker_answers_metadata_request(kafka_bootstrap: str) -> None:
    """A real client (aiokafka's admin) gets the cluster's metadata from the fixture broker."""
    metadata = cluster_metadata(kafka_bootstrap, timeout=10.0)

    assert metadata.brokers, "a ready broker lists itself"
    assert metadata.cluster_id


def test_probe_of_a_closed_port_is_a_connection_error() -> None:
    """Nothing listens: the probe says so with ConnectionError, not a hang or a traceback."""
    [port] = free_ports(1)
    with pytest.raises(ConnectionError):
        cluster_metadata(f"127.0.0.1:{port}", timeout=2.0)


async def test_produce_and_consume_one_message(kafka_bootstrap: str) -> None:
    """Produce, consume and commit through the fixture broker (group coordinator included)."""
    topic = f"test-local-kafka-{uuid.uuid4().hex}"
    key, value = b"request-1", uuid.uuid4().bytes
    await _create_topic(kafka_bootstrap, topic)
    await _produce(kafka_bootstrap, topic, [(key, value)])

    got = await _consume_all(kafka_bootstrap, topic, 1, f"test-local-kafka-{uuid.uuid4().hex}")

    assert got == [(key, value)]


async def test_durable_broker_keeps_records_across_restart(tmp_path: Path) -> None:
    """Start on a data dir and fixed ports, produce, stop, start again on the same dir: the old
    records and committed offsets are there, at the same address, with the same cluster id;
    the broker does not auto-create topics and has no broker-wide retention cut."""
    work = tmp_path / "kafka"
    port, controller_port = free_ports(2)
    topic, group = "durable.records", "durable-group"
    records = [(f"k{i}".encode(), uuid.uuid4().bytes) for i in range(5)]

    first = LocalKafka(work, port=port, controller_port=controller_port)
    await asyncio.to_thread(first.start)
    try:
        bootstrap = first.bootstrap
        cluster = cluster_metadata(bootstrap).cluster_id
        await _create_topic(bootstrap, topic)
        await _produce(bootstrap, topic, records[:3])
        assert await _consume_all(bootstrap, topic, 3, group) == records[:3]  # commits 3
        await _produce(bootstrap, topic, records[3:])

        # No auto-creation: publishing to a topic nobody created is an error.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3_000)
        await producer.start()
        try:
            with pytest.raises(KafkaError):
                await producer.send_and_wait("never.created", b"x")
        finally:
            await producer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            assert "never.created" not in await admin.list_topics()
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.BROKER, "1", {"log.retention.ms": None})]
            )
            [resource] = response.resources
            retention = {e[0]: e[1] for e in resource[4]}["log.retention.ms"]
            assert retention == "-1"
        finally:
            await admin.close()
    finally:
        await asyncio.to_thread(first.stop)
    assert cluster_id_of(work / "data") == cluster, "stop keeps a durable broker's data"

    second = LocalKafka(work, port=port, controller_port=controller_port)
    await asyncio.to_thread(second.start)
    try:
        assert second.bootstrap == bootstrap
        assert cluster_metadata(bootstrap).cluster_id == cluster, "formatted once"
        # The group resumes after its committed offset; a new group reads everything.
        assert await _consume_all(bootstrap, topic, 2, group) == records[3:]
        assert await _consume_all(bootstrap, topic, 5, "fresh-group") == records
    finally:
        await asyncio.to_thread(second.stop)


def test_fixed_port_taken_by_another_program_fails_in_one_line(tmp_path: Path) -> None:
    """A stable port held by something that is not our broker: one clear line naming the port
    and the setting, and no broker is started."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        [controller_port] = free_ports(1)
        kafka = LocalKafka(tmp_path / "kafka", port=port, controller_port=controller_port)
        with pytest.raises(KafkaLaunchError) as raised:
            kafka.start()
    message = str(raised.value)
    assert "\n" not in message
    assert f"127.0.0.1:{port} is taken by another program" in message
    assert "DISPATCH_RL_LOCAL_BROKER_PORT" in message
    assert not kafka.is_running()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.local_kafka", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_detached_start_status_stop_keeps_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kafka start` outlives its process, `status` sees it, `stop` stops it and keeps the data;
    the next start comes back on the same port with the old topic."""
    broker_dir = tmp_path / "kafka"
    port, controller_port = free_ports(2)
    ports = (f"--port={port}", f"--controller-port={controller_port}")
    assert main(["--dir", str(broker_dir), "status"]) == 1
    assert "status=stopped" in capsys.readouterr().out

    # Start from a separate process that exits at once: the broker must outlive it.
    started = _cli("--dir", str(broker_dir), "start", *ports)
    assert started.returncode == 0, started.stderr
    lines = dict(line.split("=", 1) for line in started.stdout.splitlines())
    bootstrap = lines["bootstrap"]
    assert bootstrap == f"127.0.0.1:{port}" and lines["ephemeral"] == "false"
    pid = int(lines["pid"])
    try:
        result = status(broker_dir)
        assert result.running, result.detail
        assert result.state is not None and result.state.bootstrap == bootstrap
        asyncio.run(_create_topic(bootstrap, "kept.topic", partitions=2))

        assert main(["--dir", str(broker_dir), "status"]) == 0
        out = capsys.readouterr().out
        assert f"bootstrap={bootstrap}" in out and "status=running" in out

        # `run`/`audit` using a broker started by `kafka start` leave it running.
        with using(broker_dir, port=port, controller_port=controller_port) as (_, started_here):
            assert not started_here
        assert status(broker_dir).running

        # A second start is a no-op that reports the running broker.
        assert main(["--dir", str(broker_dir), "start", *ports]) == 0
        out = capsys.readouterr().out
        assert f"bootstrap={bootstrap}" in out and "status=already-running" in out
    finally:
        assert main(["--dir", str(broker_dir), "stop"]) == 0
    assert "status=stopped" in capsys.readouterr().out
    assert not status(broker_dir).running
    assert _process_gone(pid)
    assert (broker_dir / "data" / "meta.properties").is_file(), "data kept by stop"

    again = _cli("--dir", str(broker_dir), "start", *ports)
    assert again.returncode == 0, again.stderr
    try:
        assert f"bootstrap={bootstrap}" in again.stdout
        described = asyncio.run(_describe(bootstrap, "kept.topic"))
        assert described == 2, "the topic and its partitions survived the restart"
    finally:
        assert main(["--dir", str(broker_dir), "stop"]) == 0


def test_an_on_demand_broker_is_stopped_by_its_last_user_only(tmp_path: Path) -> None:
    """`run` started it, a second user (another worker, an audit) joined: the starter leaving
    does not pull the broker from under the other; the last one out stops it, data kept."""
    broker_dir = tmp_path / "kafka"
    port, controller_port = free_ports(2)
    first = using(broker_dir, port=port, controller_port=controller_port)
    state, started = first.__enter__()
    second = using(broker_dir, port=port, controller_port=controller_port)
    try:
        assert started and state.on_demand
        again, started_again = second.__enter__()
        assert (again.pid, started_again) == (state.pid, False)

        first.__exit__(None, None, None)
        assert status(broker_dir).running, "the second user still holds it"
    finally:
        second.__exit__(None, None, None)
    assert not status(broker_dir).running, "the last user out stopped it"
    assert (broker_dir / "data" / "meta.properties").is_file()

    # A user that fails still lets go of the broker it started.
    with (
        pytest.raises(RuntimeError, match="worker failed"),
        using(broker_dir, port=port, controller_port=controller_port),
    ):
        raise RuntimeError("worker failed")
    assert not status(broker_dir).running


def test_detached_ephemeral_broker_is_deleted_by_stop(tmp_path: Path) -> None:
    """`kafka start --ephemeral`: free port, empty data outside the broker dir, gone at stop."""
    broker_dir = tmp_path / "kafka"
    started = _cli("--dir", str(broker_dir), "start", "--ephemeral")
    assert started.returncode == 0, started.stderr
    lines = dict(line.split("=", 1) for line in started.stdout.splitlines())
    data_dir = Path(lines["data_dir"])
    try:
        assert lines["ephemeral"] == "true"
        assert broker_dir not in data_dir.parents, "never inside the durable broker dir"
        assert cluster_metadata(lines["bootstrap"]).brokers
    finally:
        assert main(["--dir", str(broker_dir), "stop"]) == 0
    assert not data_dir.exists()


async def _describe(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        assert described["error_code"] == 0
        return len(described["partitions"])
    finally:
        await admin.close()


def _process_gone(pid: int) -> bool:
    # Once stopped, the orphaned broker is at most a zombie until init reaps it.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True  # reaped meanwhile
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def test_cluster_ids_never_look_like_an_option() -> None:
    """A cluster id starting with '-' would make StorageTool's parser fail (1 in 64 starts)."""
    ids = [new_cluster_id() for _ in range(5000)]
    assert all(len(c) == 22 and not c.startswith("-") for c in ids)
