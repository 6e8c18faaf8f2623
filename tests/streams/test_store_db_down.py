"""The audit store's database is down when the worker starts (real broker, real PostgreSQL):
the optimizer answers meanwhile, the store waits for the database, then catches up from Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from structlog.testing import capture_logs

from optimizer.generate import generate_day
from optimizer.serving import StaticPolicyProvider
from schemas import HeuristicDone
from streams.store import AuditStore
from streams.worker import keyed, publish_events, running_worker
from tests.streams.conftest import group_caught_up, read_topic, unique_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _forwarder(port: int, target: int) -> asyncio.Server:
    """A TCP relay on `port` to the real server: 'the database comes up' when it starts."""

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(relay, "127.0.0.1", port)


async def test_store_waits_for_its_database_and_catches_up(
    kafka_bootstrap: str, tmp_path: Path, postgres_url: str, seed_day: HeuristicDone
) -> None:
    real_port = urlsplit(postgres_url).port
    assert real_port is not None
    port = _free_port()  # nothing listens here until the relay starts
    url = postgres_url.replace(f":{real_port}/", f":{port}/")
    settings = unique_settings(kafka_bootstrap, tmp_path, store_enabled=True, store_url=url)
    days = [seed_day, generate_day(20, 4, 12)]
    started, leave = asyncio.Event(), asyncio.Event()

    async def worker() -> None:
        async with running_worker(settings, dataset=False, provider=StaticPolicyProvider()):
            started.set()
            await leave.wait()

    with capture_logs() as logs:
        task = asyncio.create_task(worker())
        try:
            await publish_events(settings, keyed(days))
            answered = await read_topic(
                settings, settings.topic_optimized, done=lambda r: len(r) >= 2, timeout=90
            )
            assert len(answered) == 2, "the optimizer answers while the store's database is down"
            assert not started.is_set() and not task.done()
            relay = await _forwarder(port, real_port)
            try:
                await asyncio.wait_for(started.wait(), timeout=90)
                topics = (settings.topic_input, settings.topic_optimized, settings.topic_audit)
                await group_caught_up(settings, settings.store_group, topics, timeout=60)
            finally:
                leave.set()
                await task
                relay.close()
        finally:
            leave.set()
            if not task.done():
                task.cancel()
    retries = [e for e in logs if e["event"] == "store_unreachable_retrying"]
    assert retries and all(e["log_level"] == "warning" and e["error"] for e in retries)
    store = AuditStore.open(postgres_url)
    try:
        counts = store.counts()
    finally:
        store.close()
    assert counts["heuristic_done"] == counts["optimized"] == len(days)
