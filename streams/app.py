"""`create_app(settings)`: the Faust app of the optimizer worker.

One agent, `optimize`, reads the input topic with concurrency 1 (faust-streaming #606 can commit
past an in-flight message with more) and hands each message to a `streams.pipeline.Pipeline`:
one lane per partition, optimizing and publishing side by side, acking offsets in order
(`DISPATCH_RL_PIPELINED=false`: the old one-message-at-a-time path, for comparison). A timer asks
the policy provider to look for a newly promoted model every `model_poll_seconds` (hot reload).

Faust knows nothing of pydantic: every topic carries raw bytes and `streams.codec` does the rest.
The table web views are off (`web_tables_enabled=False`); tables, if ever added, live in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from functools import partial
from typing import Any

import faust
import structlog
from aiokafka.partitioner import murmur2
from faust.types import TP

from optimizer.serving import PolicyProvider, default_provider
from streams import stage_trace
from streams.agents import DispatchHandler, Handled, Source, TopicNames
from streams.pipeline import Item, Pipeline
from streams.prepare_processes import PrepareProcesses
from streams.settings import Settings
from streams.topics import MAX_MESSAGE_BYTES, declare_topics, faust_broker_options

log = structlog.get_logger("dispatch_rl.streams")

AGENT_NAME = "optimize"


def create_app(settings: Settings, provider: PolicyProvider | None = None) -> faust.App:
    """The optimizer worker's Faust app (not started).

    `provider` serves the move policy (default: `default_provider(settings.model_dir)`); tests
    inject one whose policy raises to force the fallback path. The app id (`settings.app_id`) is
    the consumer group of the agent: give each independent deployment or test its own.
    """
    injected = provider is not None
    provider = provider if provider is not None else default_provider(settings.model_dir)
    datadir = settings.state_dir / "faust" / settings.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        settings.app_id,
        **faust_broker_options(settings),
        autodiscover=False,
        store="memory://",
        datadir=str(datadir),
        key_serializer="raw",
        value_serializer="raw",
        topic_allow_declare=True,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replicas,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        producer_max_request_size=MAX_MESSAGE_BYTES,
        broker_commit_interval=1.0,
        # Faust's own aiohttp server stays off: the worker's one web server (FastAPI, in
        # streams.web, started by running_worker) serves health, the API and the dashboard.
        web_enabled=False,
        web_tables_enabled=False,
    )
    topics = declare_topics(app, settings)

    partition_of = KeyPartitions()

    async def send(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        # aiokafka's producer under Faust's (not topic.send, nor Faust's Producer.send: its
        # produce-message signal and a typing cast evaluated per record cost more than the
        # send itself); awaiting the returned future waits for the broker's acknowledgement.
        # The partition is the one the default partitioner would pick, hashed once per key
        # (see KeyPartitions).
        producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        partition = None
        if key is not None:
            known = producer.client.cluster.partitions_for_topic(topic)
            if known:  # else no metadata yet: the producer's partitioner decides
                partition = partition_of(key, len(known))
        ack: Awaitable[Any] = await producer.send(topic, value, key=key, partition=partition)
        return ack

    handler = DispatchHandler(
        TopicNames(
            optimized=settings.topic_optimized,
            audit=settings.topic_audit,
            dead_letter=settings.topic_dead_letter,
        ),
        provider,
        settings.dispatch_config(),
        settings.limits(),
        send,
        max_record_bytes=MAX_MESSAGE_BYTES,
    )
    app.dispatch_handler = handler  # type: ignore[attr-defined]  # for tests and operators
    app.dispatch_provider = provider  # type: ignore[attr-defined]
    app.dispatch_pipeline = None  # type: ignore[attr-defined]

    @app.agent(topics.input, name=AGENT_NAME, concurrency=1)
    async def optimize(stream: faust.StreamT[bytes]) -> AsyncIterator[Handled]:
        if not settings.pipelined:
            # The one-at-a-time path, kept for comparison (bench/stream_throughput.py):
            # Faust acks each message when the next is taken.
            async for event in stream.events():
                msg = event.message
                yield await handler.handle(
                    event.value, msg.key, Source(msg.topic, msg.partition, msg.offset)
                )
            return
        manual = stream.noack()  # type: ignore[attr-defined]  # in Stream, not StreamT
        pipeline = Pipeline(
            handler,
            batch_max=settings.pipeline_batch_max,
            threads=max(2, settings.topic_partitions),
            # Faust's own flow control, not pause_partitions: a paused partition's records
            # still being handed out from the current fetch would be dropped (and not seen
            # again until a restart); a "buffered" one keeps them coming.
            pause=app.consumer.on_buffer_full,
            resume=app.consumer.on_buffer_drop,
            # The children load the registry's champion themselves: an injected provider
            # (tests) is served in a thread.
            processes=None
            if settings.prepare_processes == 0 or injected
            else PrepareProcesses.for_settings(settings, settings.prepare_processes, handler),
        )
        app.dispatch_pipeline = pipeline  # type: ignore[attr-defined]
        # Faust clears the queues it manages when a rebalance revokes the partitions, before
        # it waits for the messages in flight: the lanes' queues are forgotten then too.
        app.dispatch_revoke_hook = _DropQueuedOnRevoke(app, pipeline)  # type: ignore[attr-defined]
        app.flow_control.manage_queue(app.dispatch_revoke_hook)  # type: ignore[attr-defined]
        try:
            if pipeline.processes is not None:
                try:
                    await pipeline.processes.start()
                except Exception as exc:  # still optimize, in a thread, and say why
                    log.error("prepare_processes_unavailable", error=repr(exc), using="a thread")
                    pipeline.processes.close()
                    pipeline.processes = None
            async for event in manual.events():
                msg = event.message
                stage_trace.mark(msg.key, "agent")
                await pipeline.submit(
                    Item(
                        event.value,
                        msg.key,
                        Source(msg.topic, msg.partition, msg.offset),
                        partial(manual.ack, event),
                        TP(msg.topic, msg.partition),  # Faust's own: its sets assert the type
                    )
                )
        finally:
            await pipeline.close()

    @app.timer(interval=settings.model_poll_seconds, name="refresh_policy")  # type: ignore[untyped-decorator]
    async def refresh_policy() -> None:
        loop = asyncio.get_running_loop()
        try:
            changed = await loop.run_in_executor(None, provider.refresh)
        except Exception:  # a broken registry must not stop the worker; the old policy serves
            log.exception("policy_refresh_failed")
            return
        if changed:
            log.info("policy_reloaded", model_version=provider.policy().version)

    return app


class _DropQueuedOnRevoke:
    """Looks like a queue to Faust's flow control (`clear()`): drops the pipeline's queued
    messages when a rebalance revokes the partitions (`Pipeline.drop_queued`)."""

    def __init__(self, app: faust.App, pipeline: Pipeline) -> None:
        self.app = app
        self.pipeline = pipeline

    def clear(self) -> None:
        # Faust calls it with the flow suspended (partitions revoked) and again when it
        # resumes the flow after the new assignment: messages queued then are current and kept.
        if self.app.flow_control.is_active():
            return
        n = self.pipeline.drop_queued()
        if n:
            log.info("queued_dropped_on_rebalance", messages=n, redelivered="from the commit")


class KeyPartitions:
    """The partition aiokafka's default partitioner gives a key, computed once per key.

    `murmur2(key) & 0x7fffffff % partitions`, as `aiokafka.partitioner.DefaultPartitioner`
    (and the Java client) does, so records land where they would without it. Its murmur2 is
    pure Python, about 14 us a call; a dispatch publishes every audit and its `Optimized`
    under the same key, so one call serves them all (half the producer's CPU per record,
    measured with 7 records per key). The last few thousand keys are remembered.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._known: dict[tuple[bytes, int], int] = {}

    def __call__(self, key: bytes, partitions: int) -> int:
        found = self._known.get((key, partitions))
        if found is None:
            if len(self._known) >= self.size:
                self._known.clear()
            found = self._known[(key, partitions)] = (murmur2(key) & 0x7FFFFFFF) % partitions
        return found


def agent_of(app: faust.App) -> Any:
    """The optimizer agent of an app made by `create_app` (for `test_context()`)."""
    return app.agents[AGENT_NAME]
