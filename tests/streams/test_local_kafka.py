"""Integration tests of the local Kafka launcher and the ``kafka_bootstrap`` fixture.

They need a real broker (the fixture provides one; see tests/kafka_broker.py) and, for the
detached-mode test, Java and the cached broker jars.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.local_kafka import main, metadata_request, status

pytestmark = pytest.mark.kafka


def test_broker_answers_metadata_request(kafka_bootstrap: str) -> None:
    metadata = metadata_request(kafka_bootstrap, timeout=10.0)

    assert metadata.brokers, "a ready broker lists itself"
    assert metadata.cluster_id


async def test_produce_and_consume_one_message(kafka_bootstrap: str) -> None:
    topic = f"test-local-kafka-{uuid.uuid4().hex}"
    key, value = b"request-1", uuid.uuid4().bytes

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        # The topic does not exist yet: the broker auto-creates it.
        sent = await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), 30)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"test-local-kafka-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        received = await asyncio.wait_for(consumer.getone(), 60)
        await consumer.commit()  # exercises the group coordinator (__consumer_offsets)
    finally:
        await consumer.stop()

    assert (received.topic, received.partition, received.offset) == (
        topic,
        sent.partition,
        sent.offset,
    )
    assert (received.key, received.value) == (key, value)


def test_detached_start_status_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_dir = tmp_path / "kafka"
    assert main(["--state-dir", str(state_dir), "status"]) == 1
    assert "status=stopped" in capsys.readouterr().out

    # Start from a separate process that exits at once: the broker must outlive it.
    started = subprocess.run(
        [sys.executable, "-m", "streams.local_kafka", "--state-dir", str(state_dir), "start"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    lines = dict(line.split("=", 1) for line in started.stdout.splitlines())
    bootstrap = lines["bootstrap"]
    assert bootstrap.startswith("127.0.0.1:")
    pid = int(lines["pid"])
    try:
        result = status(state_dir)
        assert result.running, result.detail
        assert result.state is not None and result.state.bootstrap == bootstrap
        assert metadata_request(bootstrap, timeout=10.0).brokers

        assert main(["--state-dir", str(state_dir), "status"]) == 0
        out = capsys.readouterr().out
        assert f"bootstrap={bootstrap}" in out and "status=running" in out

        # A second start is a no-op that reports the running broker.
        assert main(["--state-dir", str(state_dir), "start"]) == 0
        out = capsys.readouterr().out
        assert f"bootstrap={bootstrap}" in out and "status=already-running" in out
    finally:
        assert main(["--state-dir", str(state_dir), "stop"]) == 0
    assert "status=stopped" in capsys.readouterr().out

    assert not status(state_dir).running
    assert main(["--state-dir", str(state_dir), "status"]) == 1
    assert "status=stopped" in capsys.readouterr().out
    assert _process_gone(pid)


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
    from streams.local_kafka import _cluster_id

    ids = [_cluster_id() for _ in range(5000)]
    assert all(len(c) == 22 and not c.startswith("-") for c in ids)
