"""Per-partition pipelines: each input partition in offset order, partitions side by side.

The agent hands every message to `Pipeline.submit`. Each partition gets a lane of two tasks:

* prepare: takes what has arrived (up to `batch_max` messages) and runs
  `DispatchHandler.prepare` on each in a thread (decode, optimize, encode); the lanes share
  `streams.prepare_threads.PrepareThreads` (one thread, another while one is held by a slow
  message), or, when the worker runs prepare processes, `streams.prepare_processes`, through
  `streams.batching.PrepareGroups`: the batches of every lane that are waiting for a process
  go to it in one call;
* publish: takes every prepared batch that is ready, publishes it through
  `streams.batching.PublishRounds` (audits acknowledged, then `Optimized`/`DeadLetter`
  acknowledged, in one send round with every other lane's ready batches), then acks the input
  offsets, in offset order.

So a partition's next batch is optimized while the previous one's sends are in flight, a
large day occupies one thread while the other partitions' lanes go on in another, and an offset is
acked only after everything before it in its partition is published. Faust commits the acked
prefix of each partition; with one agent actor and acks in offset order it never sees the gap
that makes it commit past an in-flight message (faust-streaming #606).

Flow control: a lane holding `high_water` unacked messages pauses the fetching of its partition
until it is down to `low_water`, so a slow partition neither grows without bound nor stops the
others. (The app pauses through Faust's own buffer-full flow control: `pause_partitions` drops
the rest of a fetched batch of that partition, which is then not seen again until a restart.)
A lane whose sends fail keeps retrying (see `DispatchHandler.finish`) and holds its offsets:
nothing after an unpublished input is ever committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from streams import stage_trace
from streams.agents import DispatchHandler, Prepared, Source
from streams.batching import PrepareGroups, PublishRounds
from streams.prepare_threads import PrepareThreads

if TYPE_CHECKING:
    from streams.prepare_processes import PrepareProcesses

log = structlog.get_logger("dispatch_rl.streams")


@dataclass(frozen=True, slots=True)
class Item:
    raw: bytes | None
    key: bytes | None
    source: Source
    ack: Callable[[], Awaitable[Any]]
    """Acks the input offset (Faust's `stream.ack(event)`)."""
    partition_ref: Any = None
    """What `pause`/`resume` take for this partition (Faust's TP)."""


class Pipeline:
    """Lanes per input partition; see the module docstring."""

    def __init__(
        self,
        handler: DispatchHandler,
        *,
        batch_max: int = 64,
        threads: int = 4,
        slow_seconds: float = 0.5,
        high_water: int = 256,
        low_water: int = 64,
        pause: Callable[[Any], None] | None = None,
        resume: Callable[[Any], None] | None = None,
        processes: PrepareProcesses | None = None,
    ) -> None:
        self.handler = handler
        self.batch_max = batch_max
        self.high_water = high_water
        self.low_water = low_water
        self._pause = pause
        self._resume = resume
        self.threads = PrepareThreads(max_threads=threads, slow_seconds=slow_seconds)
        """At most `threads` threads; one while no message holds it for `slow_seconds`."""
        self.processes = processes
        """When set, batches are prepared in these child processes instead of the threads."""
        self._groups: PrepareGroups | None = None
        self.rounds = PublishRounds(handler)
        """Every lane's publishes, one send round for all that are ready."""
        self.lanes: dict[tuple[str, int], _Lane] = {}
        self.failure: BaseException | None = None
        self.pauses = 0
        """How many times a lane paused its partition (flow control)."""
        self.dropped = 0
        """Queued messages forgotten at rebalances (`drop_queued`), all redelivered."""
        self._latest: Item | None = None

    @property
    def groups(self) -> PrepareGroups | None:
        """Every lane's prepare calls, one call per idle prepare process (None: threads)."""
        if self.processes is None:
            return None
        if self._groups is None or self._groups.processes is not self.processes:
            self._groups = PrepareGroups(self.processes, max_messages=self.batch_max)
        return self._groups

    def batching(self) -> dict[str, int]:
        """Lane batches prepared over prepare-process calls, published over send rounds."""
        groups = self._groups
        return {
            "prepare_calls": groups.calls if groups is not None else 0,
            "prepared_batches": groups.batches if groups is not None else 0,
            "send_rounds": self.rounds.rounds,
            "published_batches": self.rounds.batches,
        }

    async def submit(self, item: Item) -> None:
        """Queue one message on its partition's lane (returns at once)."""
        if self.failure is not None:
            raise self.failure
        self._latest = item
        key = (item.source.topic, item.source.partition)
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = _Lane(self, key)
        lane.put(item)

    def pending(self) -> int:
        """Messages submitted and not yet acked, over all lanes."""
        return sum(lane.pending for lane in self.lanes.values())

    def drop_queued(self) -> int:
        """Forget the messages still queued (no lane has started to prepare them); return how
        many.

        For a rebalance: the consumer group takes every partition back before it hands them
        out again (aiokafka's eager protocol), Faust waits until every message it handed out
        is acked or forgotten (`stream_wait_empty`: it keeps weak references and collects
        garbage), and the new owner of each partition starts from its committed offset. So a
        queued, unacked message is redelivered anyway; preparing it first would only delay the
        rebalance (up to `high_water` messages per lane) and publish it twice. Batches being
        prepared or published finish and are acked in order (their messages are referenced by
        the lanes, so Faust waits for them). The latest message taken is kept (prepared, then
        acked): Faust's stream still holds it, so it could not be forgotten, and Faust would
        wait for its ack. An ack after a gap is never committed past the gap (Faust commits
        the acked prefix of a partition), so the forgotten ones before it are redelivered too.
        """
        dropped = 0
        for lane in self.lanes.values():
            kept = [i for i in lane.inbox if i is self._latest]
            n = len(lane.inbox) - len(kept)
            if n <= 0:
                continue
            lane.inbox.clear()
            lane.inbox.extend(kept)
            lane.forget(n)
            dropped += n
        self.dropped += dropped
        return dropped

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every submitted message is acked (tests, orderly stops)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.pending():
            if self.failure is not None:
                raise self.failure
            if deadline is not None and loop.time() > deadline:
                raise TimeoutError(f"{self.pending()} messages still in flight")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        """Stop every lane (unacked messages stay unacked: they are redelivered)."""
        if self.lanes:
            log.info("pipeline_closed", **self.batching())
        tasks = [t for lane in self.lanes.values() for t in lane.tasks]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.lanes.clear()
        self.rounds.close()
        if self._groups is not None:
            self._groups.close()
        self.threads.close()
        if self.processes is not None:
            self.processes.close()

    def _crashed(self, exc: BaseException) -> None:
        # prepare/publish never raise for bad input or broker trouble; this is a bug. Stop
        # taking input (the agent raises it): unacked messages are redelivered after restart.
        log.error("pipeline_crashed", error=repr(exc))
        if self.failure is None:
            self.failure = exc


class _Lane:
    """One partition: a prepare task and a publish task joined by a short queue."""

    def __init__(self, pipeline: Pipeline, key: tuple[str, int]) -> None:
        self.pipeline = pipeline
        self.key = key
        self.inbox: deque[Item] = deque()
        self.arrived = asyncio.Event()
        # Two batches ahead at most: enough to overlap optimizing with publishing.
        self.ready: asyncio.Queue[list[tuple[Prepared, Item]]] = asyncio.Queue(maxsize=2)
        self.pending = 0
        self.paused_ref: Any = None
        self.tasks = [
            asyncio.create_task(self._guard(self._prepare_loop()), name=f"prepare-{key}"),
            asyncio.create_task(self._guard(self._publish_loop()), name=f"publish-{key}"),
        ]

    def put(self, item: Item) -> None:
        self.inbox.append(item)
        self.pending += 1
        self.arrived.set()
        p = self.pipeline
        if self.pending >= p.high_water and p._pause is not None:
            # Again on every message over the mark: the consumer's own flow control may have
            # resumed the partition meanwhile.
            p._pause(item.partition_ref)
            if self.paused_ref is None:
                p.pauses += 1
                self.paused_ref = item.partition_ref
                log.info(
                    "partition_paused", topic=self.key[0], partition=self.key[1], held=self.pending
                )

    async def _guard(self, loop: Awaitable[None]) -> None:
        try:
            await loop
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.pipeline._crashed(exc)

    async def _prepare_loop(self) -> None:
        p = self.pipeline
        handler = p.handler

        def prepare(i: Item) -> Prepared:
            return handler.prepare(i.raw, i.key, i.source)

        while True:
            while not self.inbox:
                self.arrived.clear()
                await self.arrived.wait()
            batch = [self.inbox.popleft() for _ in range(min(len(self.inbox), p.batch_max))]
            stage_trace.mark_all((i.key for i in batch), "prep0")
            if p.groups is not None:
                prepared = await p.groups.map([(i.raw, i.key, i.source) for i in batch])
            else:
                prepared = await p.threads.map(prepare, batch)
            stage_trace.mark_all((i.key for i in batch), "prep1")
            await self.ready.put(list(zip(prepared, batch, strict=True)))

    async def _publish_loop(self) -> None:
        p = self.pipeline
        while True:
            batch = await self.ready.get()
            while not self.ready.empty():
                batch += self.ready.get_nowait()
            await p.rounds.publish([prepared for prepared, _ in batch])
            for _, item in batch:  # in offset order
                await item.ack()
                stage_trace.mark(item.key, "acked")
            self.forget(len(batch))

    def forget(self, n: int) -> None:
        """`n` messages are done (acked, or forgotten): resume the partition at low water."""
        p = self.pipeline
        self.pending -= n
        if self.paused_ref is not None and self.pending <= p.low_water:
            if p._resume is not None:
                p._resume(self.paused_ref)
            log.info("partition_resumed", topic=self.key[0], partition=self.key[1])
            self.paused_ref = None
