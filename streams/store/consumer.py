"""The audit store consumer: the three dispatch topics into the database, exactly once per event.

A plain aiokafka consumer with manual commits, like the dataset writer, in a consumer group of
its own per store (`store.consumer_group`: every store gets every event). Per batch: decode,
store in one transaction (`AuditStore.add`, idempotent by event id), and only then commit the
batch's offsets; a crash between the two redelivers the batch and the store absorbs it. When
the database is unreachable the batch is retried with backoff and nothing is committed, so no
event is skipped. After the commit, each newly stored `Optimized` is announced on the notifier
(the dashboard's live updates).

Undecodable records are counted and skipped here: bad input is the optimizer agent's to
dead-letter, and the outputs are ours.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from streams import codec
from streams.metrics import ConsumerLag, default_metrics
from streams.reader import topic_kinds
from streams.settings import Settings
from streams.store.notify import OptimizedNotifier
from streams.store.store import AuditStore, DispatchEvent, Source, consumer_group
from streams.topics import MAX_MESSAGE_BYTES, client_options, consumer_group_options

log = structlog.get_logger("dispatch_rl.store")

RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass
class StoreCounters:
    """What the store consumer did so far (for logs, health and tests)."""

    batches: int = 0
    stored_optimized: int = 0
    records: int = 0
    invalid: int = 0
    commits: int = 0
    db_retries: int = 0


async def run_store_consumer(
    settings: Settings,
    store: AuditStore,
    stop: asyncio.Event,
    *,
    notifier: OptimizedNotifier | None = None,
    ready: asyncio.Event | None = None,
    counters: StoreCounters | None = None,
) -> StoreCounters:
    """Consume the input, optimized and audit topics into `store` until `stop` is set."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import CommitFailedError, KafkaError

    counters = counters if counters is not None else StoreCounters()
    kinds = topic_kinds(settings)
    limits = settings.limits()
    group = consumer_group(settings, store)
    consumer = AIOKafkaConsumer(
        *kinds,
        group_id=group,
        client_id=f"{group}-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        **client_options(settings),
        **consumer_group_options(settings),
    )
    await consumer.start()
    # /metrics reports this group's lag (dispatch_rl_consumer_lag_messages{consumer=...})
    unwatch = default_metrics().watch(group, ConsumerLag(consumer))
    try:
        if ready is not None:
            ready.set()
        log.info("store_consumer_started", group=group, store=store.url)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=300, max_records=500)
            if not batches:
                continue
            items: list[tuple[DispatchEvent, Source | None]] = []
            payloads: list[bytes | str | None] = []
            offsets = {}
            for tp, records in batches.items():
                for r in records:
                    counters.records += 1
                    decoded = codec.decode_kind(kinds[r.topic], r.value, limits)
                    if isinstance(decoded, list):
                        counters.invalid += 1
                        log.info("store_skip_invalid", topic=r.topic, offset=r.offset)
                        continue
                    items.append((decoded, Source(r.topic, r.partition, r.offset)))
                    payloads.append(r.value)  # stored as read, not serialized again
                offsets[tp] = records[-1].offset + 1
            new = await _store(store, items, payloads, stop, counters)
            if new is None:
                break  # stopped while the database was down: nothing committed
            try:
                await consumer.commit(offsets)
                counters.commits += 1
            except (CommitFailedError, KafkaError) as exc:
                # A rebalance took the partitions: the next owner re-reads the batch and the
                # store keeps one row per event id.
                log.warning("store_commit_failed", error=repr(exc))
            counters.batches += 1
            counters.stored_optimized += len(new)
            if notifier is not None:
                for optimized in new:
                    notifier.publish(optimized)
    finally:
        unwatch()
        await consumer.stop()
        log.info(
            "store_consumer_stopped",
            records=counters.records,
            stored_optimized=counters.stored_optimized,
            invalid=counters.invalid,
        )
    return counters


async def _store(
    store: AuditStore,
    items: list[tuple[DispatchEvent, Source | None]],
    payloads: list[bytes | str | None],
    stop: asyncio.Event,
    counters: StoreCounters,
) -> list[Any] | None:
    """`store.add(items)` in a thread, retried with backoff until it works or `stop` is set."""
    from sqlalchemy.exc import DBAPIError

    attempt = 0
    while True:
        try:
            return await asyncio.to_thread(store.add, items, payloads)
        except DBAPIError as exc:
            delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
            counters.db_retries += 1
            attempt += 1
            log.warning("store_write_failed_retrying", error=str(exc)[:300], retry_in_s=delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return None
            except TimeoutError:
                continue
