"""The audit store and its API on a real broker: days published, the worker's store consumer
materializes them, the API answers over HTTP (only with the token), redelivery adds no row."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from optimizer.generate import generate_day
from optimizer.serving import StaticPolicyProvider
from schemas import HeuristicDone, Optimized
from streams.reader import TopicReader
from streams.settings import Settings
from streams.store import AuditStore, store_url
from streams.worker import keyed, publish_events, running_worker
from tests.streams.conftest import group_caught_up, read_topic, unique_settings

pytestmark = pytest.mark.kafka

TOKEN = "kafka-test-token"


async def test_worker_stores_days_and_serves_them_over_http(
    kafka_bootstrap: str, tmp_path: Path, seed_day: HeuristicDone
) -> None:
    """Publish three days to the worker (optimizer + store + web on a free port); the API
    lists them, verifies each replay, and refuses reads without the token; each stored
    Optimized is announced once on the notifier."""
    settings = unique_settings(
        kafka_bootstrap, tmp_path, store_enabled=True, web_enabled=True, web_port=0,
        api_token=TOKEN,
    )  # fmt: skip
    days = [seed_day, generate_day(20, 4, 12), generate_day(30, 5, 11)]
    topics = (settings.topic_input, settings.topic_optimized, settings.topic_audit)
    announced: list[Optimized] = []
    async with running_worker(settings, provider=StaticPolicyProvider()) as worker:
        assert worker.web is not None and worker.web.host == "127.0.0.1"

        async def listen() -> None:
            async with worker.notifier.subscribe() as events:
                async for opt in events:
                    announced.append(opt)

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0)
        await publish_events(settings, keyed(days))
        await _all_optimized(settings, len(days))
        await group_caught_up(settings, settings.store_group, topics, timeout=60)
        async with httpx.AsyncClient(base_url=worker.web.url, timeout=10) as http:
            assert (await http.get("/api/dispatches")).status_code == 401
            bad = {"Authorization": "Bearer wrong"}
            assert (await http.get("/api/dispatches", headers=bad)).status_code == 401
            health = await http.get("/dispatch/health/")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert {"model_version", "model", "handled", "store"} <= health.json().keys()
            auth = {"Authorization": f"Bearer {TOKEN}"}
            listing = (await http.get("/api/dispatches", headers=auth)).json()
            assert {d["dispatch_id"] for d in listing["items"]} == {d.dispatch_id for d in days}
            assert all(d["status"] is not None for d in listing["items"])
            for day in days:
                r = await http.get(f"/api/dispatches/{day.dispatch_id}/verdict", headers=auth)
                assert r.status_code == 200 and r.json()["ok"] is True, r.text
            rejected = await http.get(
                "/api/audits", headers=auth, params={"decision": "rejected", "limit": 500}
            )
            assert rejected.json()["total"] >= 1
            metrics = (await http.get("/metrics")).text  # open, like health
            lag = [
                line
                for line in metrics.splitlines()
                if line.startswith("dispatch_rl_consumer_lag_messages{")
                and f'consumer="{settings.store_group}"' in line
            ]
            assert lag and all(line.endswith(" 0.0") for line in lag), lag
        await asyncio.sleep(0.5)
        listener.cancel()
    assert sorted(o.dispatch_id for o in announced) == sorted(d.dispatch_id for d in days)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_redelivery_and_restart_keep_one_row_per_event(
    kafka_bootstrap: str,
    tmp_path: Path,
    seed_day: HeuristicDone,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    """The same day published twice (the agent re-emits the same event ids), then the store
    re-read from scratch by a new consumer group: still one row per event id, on SQLite and
    on a real PostgreSQL server."""
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    settings = unique_settings(kafka_bootstrap, tmp_path, store_enabled=True, store_url=url)
    topics = (settings.topic_input, settings.topic_optimized, settings.topic_audit)
    async with running_worker(settings, dataset=False, provider=StaticPolicyProvider()):
        await publish_events(settings, keyed([seed_day]))
        await _all_optimized(settings, 1)
        await publish_events(settings, keyed([seed_day]))  # a redelivered input
        await _all_optimized(settings, 2)
        await group_caught_up(settings, settings.store_group, topics, timeout=60)
    async with TopicReader(settings, settings.topic_audit) as reader:
        outputs = [r async for r in reader.snapshot(timeout=30)]
    assert len(outputs) >= 2  # the audit topic holds duplicates ...
    store = AuditStore.open(store_url(settings))
    counts = store.counts()
    store.close()
    proposed = len({json.loads(r.value)["event_id"] for r in outputs})
    assert len(outputs) == 2 * proposed
    # ... and the store does not.
    assert counts == {"heuristic_done": 1, "optimized": 1, "swap_audit": proposed}
    # A restart that re-reads every topic from the beginning (a new group) adds nothing.
    again = settings.model_copy(update={"store_group": settings.store_group + "-again"})
    async with running_worker(again, optimizer=False, dataset=False, store=True):
        await group_caught_up(again, again.store_group, topics, timeout=60)
    store = AuditStore.open(store_url(settings))
    assert store.counts() == counts
    store.close()


async def _all_optimized(settings: Settings, n: int) -> None:
    await read_topic(settings, settings.topic_optimized, done=lambda r: len(r) >= n, timeout=90)


async def test_demo_leaves_the_store_complete(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`demo` returns only once the audit store holds every day it published (so the
    dashboard and `audit` see them all right after)."""
    from streams.worker import _demo

    settings = unique_settings(kafka_bootstrap, tmp_path, store_enabled=True)
    days = [generate_day(20, 4, s) for s in (12, 13, 14)]
    results = await _demo(settings, days, timeout=120)
    assert all(opt is not None for _, opt in results)
    store = AuditStore.open(store_url(settings))
    try:
        counts = store.counts()
        assert counts["heuristic_done"] == counts["optimized"] == len(days)
        assert counts["swap_audit"] == sum(opt.moves_proposed for _, opt in results if opt)
    finally:
        store.close()
