"""The pipelined agent against a real broker: a burst beyond the flow-control high water,
audits durable before their Optimized, every offset committed once all is published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from optimizer.generate import generate_days
from optimizer.policy import GreedyPolicy
from optimizer.serving import StaticPolicyProvider
from schemas import Optimized, SwapAudit
from streams.topics import client_options, ensure_topics
from streams.worker import running_worker
from tests.streams.conftest import group_caught_up, read_topic, unique_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


async def test_a_burst_is_paused_resumed_and_answered_in_order(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """800 days on one partition (high water 256): the partition is paused and resumed, every
    day gets one Optimized, each Optimized was created after all its audits, and the group's
    committed offset reaches the end."""
    settings = unique_settings(kafka_bootstrap, tmp_path)
    await ensure_topics(settings)
    pool = generate_days(40, [(10, 3)], seed=77)
    days = [
        pool[i % 40].model_copy(update={"event_id": f"evt-{i}", "dispatch_id": f"d-{i}"})
        for i in range(800)
    ]
    producer = AIOKafkaProducer(acks="all", linger_ms=5, **client_options(settings))
    await producer.start()
    try:
        futures = [
            await producer.send(
                settings.topic_input, d.model_dump_json().encode(), key=b"k", partition=0
            )
            for d in days
        ]
        for f in futures:
            await f
    finally:
        await producer.stop()
    provider = StaticPolicyProvider(GreedyPolicy())
    async with running_worker(settings, dataset=False, provider=provider) as worker:
        out = await read_topic(
            settings,
            settings.topic_optimized,
            done=lambda rs: len({json.loads(r.value)["dispatch_id"] for r in rs}) >= 800,
            timeout=240,
        )
        await group_caught_up(settings, settings.app_id, (settings.topic_input,), timeout=60)
        pipeline = worker.app.dispatch_pipeline  # type: ignore[union-attr]
        assert worker.failed() is None and pipeline.failure is None
        assert pipeline.pauses >= 1
        audits = await read_topic(settings, settings.topic_audit, done=lambda rs: False, timeout=5)
    by_dispatch: dict[str, list[int]] = {}
    for r in audits:
        a = SwapAudit.model_validate_json(r.value)
        by_dispatch.setdefault(a.dispatch_id, []).append(r.timestamp)
    assert {json.loads(r.value)["dispatch_id"] for r in out} == {d.dispatch_id for d in days}
    for r in out:
        opt = Optimized.model_validate_json(r.value)
        stamps = by_dispatch.get(opt.dispatch_id, [])
        assert len(stamps) == opt.moves_proposed
        # created (handed to the producer) only after every audit was acknowledged
        assert all(t <= r.timestamp for t in stamps), opt.dispatch_id
