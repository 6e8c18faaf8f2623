"""/metrics against a real broker: a worker runs, days are published, the scraped counters move.

The scrape goes over HTTP to the worker's own web server (no token: /metrics is open, like the
health check, on a loopback-bound server).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from optimizer.generate import generate_day
from optimizer.moves import Candidates
from optimizer.policy import GreedyPolicy
from optimizer.problem import FloatArray
from optimizer.serving import StaticPolicyProvider
from optimizer.swap_pass import SearchState
from streams.worker import keyed, publish_events, running_worker
from tests.streams.conftest import read_topic, unique_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class _GatedGreedy:
    """Greedy, but each pass waits until the gate opens (to hold a backlog on the input)."""

    version = "gated-greedy"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self._greedy = GreedyPolicy()

    def score(self, state: SearchState, candidates: Candidates) -> FloatArray:
        self.gate.wait(60)
        return self._greedy.score(state, candidates)


async def _scrape(worker: Any) -> Samples:
    """GET /metrics from the worker's web server, over HTTP."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{worker.web.url}/metrics", timeout=10)
    assert response.status_code == 200
    body = response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def _total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def _until(check: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_metrics_move_with_real_dispatches(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Status, latency, moves, dead letters, lag (held backlog, then 0) and model, over HTTP."""
    settings = unique_settings(
        kafka_bootstrap, tmp_path, web_enabled=True, web_port=0, topic_partitions=1
    )
    policy = _GatedGreedy()
    days = [generate_day(12, 3, seed=s) for s in (41, 42, 43, 44)]
    async with running_worker(
        settings, dataset=False, provider=StaticPolicyProvider(policy)
    ) as worker:
        before = await _scrape(worker)
        await publish_events(settings, [*keyed(days), (b"bad", b"not json at all")])

        async def backlog() -> bool:
            s = await _scrape(worker)
            lag = _total(s, "dispatch_rl_consumer_lag_messages", consumer=settings.app_id)
            return lag >= 4  # the first day waits at the gate, the rest and the bad one queue

        await _until(backlog)
        policy.gate.set()
        await read_topic(
            settings, settings.topic_optimized, done=lambda r: len(r) >= len(days), timeout=60
        )

        async def drained() -> bool:
            s = await _scrape(worker)
            lag = _total(s, "dispatch_rl_consumer_lag_messages", consumer=settings.app_id)
            dead = _total(s, "dispatch_rl_dead_letters_total", source_topic=settings.topic_input)
            dead_before = _total(
                before, "dispatch_rl_dead_letters_total", source_topic=settings.topic_input
            )
            return lag == 0 and dead - dead_before >= 1

        await _until(drained)
        after = await _scrape(worker)

    def moved(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    assert moved("dispatch_rl_dispatches_total") == len(days)
    assert moved("dispatch_rl_dispatches_total", status="optimized") >= 1
    assert moved("dispatch_rl_pass_latency_seconds_count") == len(days)
    assert moved("dispatch_rl_moves_total", decision="accepted") >= 1
    assert moved("dispatch_rl_dead_letters_total", source_topic=settings.topic_input) == 1
    assert _total(after, "dispatch_rl_serving_model_info", model_version="gated-greedy") == 1


async def test_consumer_lag_of_a_plain_consumer(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`ConsumerLag`: high-water mark minus position of an aiokafka consumer, per partition."""
    from aiokafka import AIOKafkaConsumer

    from streams.metrics import ConsumerLag, DispatchMetrics
    from streams.topics import client_options, ensure_topics

    settings = unique_settings(kafka_bootstrap, tmp_path, topic_partitions=1)
    await ensure_topics(settings)
    await publish_events(settings, [(b"k", b"x%d" % i) for i in range(5)])
    consumer = AIOKafkaConsumer(
        settings.topic_input,
        group_id=settings.dataset_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_options(settings),
    )
    await consumer.start()
    metrics = DispatchMetrics()
    try:
        with metrics.watching("plain", ConsumerLag(consumer)):
            got = 0
            while got < 2:
                batches = await consumer.getmany(timeout_ms=500, max_records=1)
                got += sum(len(b) for b in batches.values())
            body = (await metrics.render())[0].decode()
    finally:
        await consumer.stop()
    samples = {
        s.labels["partition"]: s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "dispatch_rl_consumer_lag_messages" and s.labels["consumer"] == "plain"
    }
    assert samples == {"0": 3.0}
