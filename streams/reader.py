"""The one topic reader: range reads of topics outside any consumer group.

`TopicReader(settings)` owns one group-less consumer that assigns partitions by hand:

* `end_offsets(topics)`: where each partition ends now;
* `snapshot(topics)`: every record from the beginning (or given offsets) up to the ends seen
  when the read starts — a consistent picture, nothing published later is waited for;
* `follow(start, timeout)` / `batches(...)`: records from the given offsets as they arrive,
  until the caller stops iterating or `timeout` passes.

The audit replay, the demo's result collection and the tests read topics through it.
Consumers that commit (the optimizer agent, the dataset writer, the audit store) do not: they
belong to consumer groups and keep their own position.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from optimizer.adapter import EventKind
from streams.settings import Settings
from streams.topics import MAX_MESSAGE_BYTES, client_options

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, TopicPartition


def topic_kinds(settings: Settings) -> dict[str, EventKind]:
    """Topic name -> event kind, for the three dispatch topics."""
    return {
        settings.topic_input: "heuristic_done",
        settings.topic_optimized: "optimized",
        settings.topic_audit: "swap_audit",
    }


class TopicReader:
    """A group-less consumer over `topics` for range reads (`async with TopicReader(...)`)."""

    def __init__(self, settings: Settings, *topics: str, poll_ms: int = 300) -> None:
        self.settings = settings
        self.topics = topics
        self.poll_ms = poll_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> TopicReader:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        # Subscribing (no group) makes start() fetch the topics' metadata; then read by hand.
        consumer = AIOKafkaConsumer(
            *self.topics,
            enable_auto_commit=False,
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            **client_options(self.settings),
        )
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()  # a failed start leaves its client open otherwise
            raise
        self._consumer = consumer
        self._partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.unsubscribe()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("TopicReader used outside `async with`")
        return self._consumer

    @property
    def partitions(self) -> list[TopicPartition]:
        """Every partition of the reader's topics (a topic missing on the broker has none)."""
        return list(self._partitions)

    async def end_offsets(self) -> dict[TopicPartition, int]:
        """The current end offset of every partition."""
        tps = self._partitions
        return dict(await self.consumer.end_offsets(tps)) if tps else {}

    async def snapshot(
        self,
        *,
        start: Mapping[TopicPartition, int] | None = None,
        timeout: float = 30.0,
    ) -> AsyncIterator[Any]:
        """Records from `start` (default: the beginning) up to the ends seen now.

        Raises `TimeoutError` if the ends are not reached within `timeout` seconds.
        """
        ends = await self.end_offsets()
        if not ends:
            return
        consumer = self.consumer
        consumer.assign(list(ends))
        await self._seek(start)
        positions = {tp: await consumer.position(tp) for tp in ends}
        remaining = {tp for tp, end in ends.items() if positions[tp] < end}
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {sorted(map(str, remaining))} in {timeout} s")
            batches = await consumer.getmany(*remaining, timeout_ms=self.poll_ms)
            for tp, records in batches.items():
                for r in records:
                    if r.offset < ends[tp]:
                        yield r
                    if r.offset + 1 >= ends[tp]:
                        remaining.discard(tp)

    async def batches(
        self, *, start: Mapping[TopicPartition, int] | None = None, timeout: float
    ) -> AsyncIterator[list[Any]]:
        """One list of records per poll (empty when nothing came), from `start` (default: the
        beginning), until the caller stops iterating or `timeout` seconds pass."""
        if not self._partitions:
            return
        self.consumer.assign(self._partitions)
        await self._seek(start)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            polled = await self.consumer.getmany(timeout_ms=self.poll_ms)
            yield [r for records in polled.values() for r in records]

    async def follow(
        self, *, start: Mapping[TopicPartition, int] | None = None, timeout: float
    ) -> AsyncIterator[Any]:
        """`batches`, record by record."""
        async for batch in self.batches(start=start, timeout=timeout):
            for r in batch:
                yield r

    async def _seek(self, start: Mapping[TopicPartition, int] | None) -> None:
        """Each partition to its `start` offset; the beginning where none is given."""
        start = start or {}
        rest = [tp for tp in self._partitions if tp not in start]
        for tp in self._partitions:
            if tp in start:
                self.consumer.seek(tp, start[tp])
        if rest:
            await self.consumer.seek_to_beginning(*rest)


async def end_offsets(settings: Settings, *topics: str) -> dict[TopicPartition, int]:
    """The current end offset of every partition of `topics` (one short-lived reader)."""
    async with TopicReader(settings, *topics) as reader:
        return await reader.end_offsets()
