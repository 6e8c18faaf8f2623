"""Does a broker answer? Asked with a real Kafka client (aiokafka's admin client).

Ready means a Metadata request is answered and lists at least one broker, not merely an open
port. The functions here are synchronous (the launcher, the CLI and the test fixtures are), and
safe to call from inside a running event loop: the client then runs in a short-lived thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import Any

__all__ = ["BrokerMetadata", "broker_answers", "cluster_metadata", "port_in_use"]

_CLIENT_ID = "dispatch-rl-local-kafka"


@dataclass(frozen=True, slots=True)
class BrokerMetadata:
    """What a cluster answered to a Metadata request."""

    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]
    """(node id, host, port) of each broker; empty while a broker is still starting."""


def _addresses(bootstrap: str) -> list[str]:
    addresses = [part.strip() for part in bootstrap.split(",") if part.strip()]
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"not a host:port address: {address!r}")
    return addresses


async def _describe(addresses: list[str], timeout: float) -> BrokerMetadata:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=addresses,
        client_id=_CLIENT_ID,
        request_timeout_ms=max(1, int(timeout * 1000)),
    )
    try:
        await admin.start()
        answer: dict[str, Any] = await admin.describe_cluster()
    finally:
        await admin.close()
    brokers = tuple(
        (int(b["node_id"]), str(b["host"]), int(b["port"])) for b in answer.get("brokers", ())
    )
    return BrokerMetadata(answer.get("cluster_id"), int(answer.get("controller_id", -1)), brokers)


def _run_sync(addresses: list[str], timeout: float) -> BrokerMetadata:
    async def bounded() -> BrokerMetadata:
        return await asyncio.wait_for(_describe(addresses, timeout), timeout)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    # Called from inside an event loop (say, an async test): run the client on its own loop.
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kafka-probe") as pool:
        return pool.submit(asyncio.run, bounded()).result()


@contextlib.contextmanager
def _quiet_aiokafka() -> Any:
    # A refused connection is an expected answer here ("not up yet"), not an error to log.
    logger = logging.getLogger("aiokafka")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def cluster_metadata(bootstrap: str, timeout: float = 5.0) -> BrokerMetadata:
    """Ask the cluster at ``bootstrap`` (``host:port[,host:port]``) for its metadata.

    Raises ``ConnectionError`` if no address answers within ``timeout`` seconds, and
    ``ValueError`` for an unparsable address.
    """
    addresses = _addresses(bootstrap)
    if not addresses:
        raise ValueError("empty bootstrap address")
    try:
        with _quiet_aiokafka():
            return _run_sync(addresses, timeout)
    except (OSError, TimeoutError) as exc:  # asyncio.TimeoutError is TimeoutError (3.11)
        raise ConnectionError(f"no Kafka broker answered at {bootstrap!r}: {exc!r}") from exc
    except Exception as exc:  # aiokafka's KafkaError family: the broker did not answer well
        if type(exc).__module__.startswith("aiokafka"):
            raise ConnectionError(f"no Kafka broker answered at {bootstrap!r}: {exc!r}") from exc
        raise


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` (cheap, no Kafka request)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def broker_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """True if a broker at ``bootstrap`` answers a Metadata request listing a broker."""
    try:
        return bool(cluster_metadata(bootstrap, timeout).brokers)
    except (ConnectionError, ValueError):
        return False
