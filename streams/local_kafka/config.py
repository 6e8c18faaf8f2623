"""The local broker's configuration: ``server.properties`` and the cluster id of its storage."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

__all__ = ["HOST", "NODE_ID", "cluster_id_of", "new_cluster_id", "server_properties"]

HOST = "127.0.0.1"
"""The only interface the local broker listens on."""
NODE_ID = 1


def server_properties(data_dir: Path, port: int, controller_port: int) -> dict[str, str]:
    """``server.properties`` of a single-node KRaft broker (combined broker and controller).

    No topic auto-creation and no broker-wide retention cut: topics are created on purpose,
    with their own configs (``streams.topics``).
    """
    return {
        # KRaft combined mode with static voters, as tested on Kafka 3.9 and 4.x.
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        # Topics are created on purpose, with their configs (streams.topics): a producer
        # that publishes first gets an error instead of a 1 MB one-partition topic.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        # Single node: everything replicated once.
        "default.replication.factor": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # One partition for the internal topics: the first consumer group and transaction
        # come up much faster than with the default 50 partitions.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        # No broker-wide cut: each topic's retention.ms decides (the swap log and its
        # inputs are kept forever by default). A stopped service's committed offsets are
        # kept a year (default 7 days), so a restart after a long pause resumes where it
        # stopped instead of re-reading every topic from the beginning.
        "log.retention.ms": "-1",
        "offsets.retention.minutes": str(365 * 24 * 60),
        # Small-disk and small-heap friendly: modest segments, and a log-cleaner buffer
        # that fits the 512 MiB heap comfortably.
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }


def new_cluster_id() -> str:
    """22 chars of url-safe base64 of a uuid4, never starting with '-'.

    One id in 64 would start with '-', which StorageTool's argument parser takes for an
    option, so `format -t -abc...` fails (Kafka's own `Uuid.randomUuid()` skips those too).
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def cluster_id_of(data_dir: Path) -> str | None:
    """The cluster id a formatted data dir belongs to (from ``meta.properties``), else None."""
    try:
        text = (data_dir / "meta.properties").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "cluster.id":
            return value.strip()
    return None
