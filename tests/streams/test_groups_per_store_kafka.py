"""Two workers as on two hosts, each with its own audit store (SQLite) and dataset directory, the
consumer groups left at their defaults, on a real broker: each store and each dataset gets
every dispatch, instead of the two splitting the partitions between them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from optimizer.generate import generate_days
from optimizer.serving import StaticPolicyProvider
from streams.dataset import consumer_group as dataset_group
from streams.dataset import dataset_stats, read_dataset_id
from streams.settings import Settings
from streams.store import AuditStore, store_url
from streams.store.store import consumer_group as store_group
from streams.worker import keyed, publish_events, running_worker
from tests.streams.conftest import group_caught_up, read_topic, unique_settings

pytestmark = pytest.mark.kafka


def _host(base: Settings, root: Path) -> Settings:
    """`base` with a data dir, dataset dir and state dir of its own (another host's disks)."""
    return base.model_copy(
        update={"data_dir": root / "data", "dataset_dir": root / "dataset", "state_dir": root}
    )


async def test_two_hosts_each_keep_the_whole_swap_log_and_dataset(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    base = unique_settings(kafka_bootstrap, tmp_path, store_enabled=True)
    # The groups as a fresh install has them: not set (unique_settings sets them for isolation).
    fields = base.model_dump(exclude={"store_group", "dataset_group"})
    base = Settings(**fields)
    assert not {"store_group", "dataset_group"} & base.model_fields_set
    hosts = [_host(base, tmp_path / name) for name in ("host-a", "host-b")]
    days = generate_days(24, [(10, 3)], seed=7)
    ids = {d.dispatch_id for d in days}
    store_topics = (base.topic_input, base.topic_optimized, base.topic_audit)
    dataset_topics = (base.topic_input, base.topic_optimized)
    provider = StaticPolicyProvider()
    async with (
        running_worker(hosts[0], provider=provider) as a,
        running_worker(hosts[1], provider=provider) as b,
    ):
        assert a.store is not None and b.store is not None
        groups = [store_group(h, w.store.store) for h, w in zip(hosts, (a, b), strict=True)]
        assert groups[0] != groups[1] and all(g.startswith("dispatch-rl-store-") for g in groups)
        await asyncio.sleep(3)  # both optimizer members in the group: the partitions split
        await publish_events(base, keyed(days))
        await read_topic(base, base.topic_optimized, done=lambda r: len(r) >= len(days))
        for host, group in zip(hosts, groups, strict=True):
            await group_caught_up(host, group, store_topics, timeout=60)
            found = read_dataset_id(host.dataset_dir)
            assert found is not None
            await group_caught_up(host, dataset_group(host, found), dataset_topics, timeout=60)
        handled = [sum(w.health()["handled"].values()) for w in (a, b)]
    for host in hosts:
        store = AuditStore.open(store_url(host))
        try:
            counts = store.counts()
            stored = {row.dispatch_id for row in store.dispatches(limit=100).items}
        finally:
            store.close()
        assert counts["heuristic_done"] == counts["optimized"] == len(days), (host.data_dir, counts)
        assert stored == ids
        stats = dataset_stats(host.dataset_dir)
        assert stats.dispatches == stats.outcomes == len(days), (host.dataset_dir, stats)
    # ... while the optimizing itself was shared by the two workers.
    assert sum(handled) == len(days) and all(n > 0 for n in handled), handled
