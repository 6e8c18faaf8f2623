"""Work of several partitions' lanes done together: one prepare call, one send round.

The pipeline's lanes (`streams.pipeline`) each prepare and publish their own partition's
batches in order. Alone, each lane would make its own call to a prepare process and its own
two produce rounds (audits, then finals) per batch, and under a steady rate, where batches hold
one message, that per-call cost is most of the worker's CPU. So the lanes' calls meet here:

* `PrepareGroups`: a lane asks for its batch to be prepared; a loop first takes a prepare
  process (an idle one, or an extra one when every child is held by one message), then every
  batch asked for by then, and prepares them as ONE call to that child. When the child is
  idle a lone batch goes at once (no added wait); when it is busy, what piles up meanwhile
  goes together, and each lane gets its batch back as soon as the child has prepared it (not
  when the whole call is done). A batch of `alone_bytes` or more (a large day) goes alone, so
  it never holds small days of other partitions in its call; one with a day of
  `PrepareProcesses.own_bytes` or more goes to a child started for it alone.
* `PublishRounds`: a lane hands its prepared batch over; one round sends the audits of every
  batch handed over by then, waits for their acknowledgements, then sends the final records
  (`Optimized` / `DeadLetter`) of those batches and waits for theirs
  (`DispatchHandler.publish_round`); a second round may start while one is under way, so a
  batch ready just after a round started does not wait for that round's acknowledgements. A
  batch whose sends failed is finished by its own lane, retrying (`DispatchHandler.finish`): a
  partition whose sends fail holds only itself.

Per-partition order holds because a lane asks again only once its previous batch is answered
(prepare) or acknowledged (publish), and a consumer never sees an `Optimized` before its
audits are acknowledged: within a round, no final record is sent before every audit of its
batch is.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from streams.agents import DispatchHandler, Prepared, Unsent

if TYPE_CHECKING:
    from streams.prepare_child import Job
    from streams.prepare_processes import PrepareProcesses

ALONE_BYTES = 64 * 1024
"""A batch this large (inputs' bytes; a 10x3 day is ~4 KB, 300x40 ~100 KB) is prepared in a
call of its own: its pass may take seconds."""


class PrepareGroups:
    """The lanes' prepare calls, grouped into one call per idle prepare process."""

    def __init__(
        self, processes: PrepareProcesses, *, max_messages: int, alone_bytes: int = ALONE_BYTES
    ) -> None:
        self.processes = processes
        self.max_messages = max_messages
        """A group takes further batches only while it holds fewer messages than this."""
        self.alone_bytes = alone_bytes
        self.calls = 0
        """Calls made to prepare processes."""
        self.batches = 0
        """Lane batches prepared (over `calls` calls)."""
        self._asked: deque[tuple[list[Job], asyncio.Future[list[Prepared]]]] = deque()
        self._arrived = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    async def map(self, jobs: Sequence[Job]) -> list[Prepared]:
        """`Prepared` for each job, in order (as `PrepareProcesses.map`); jobs large enough
        for a child of their own go to one (`PrepareProcesses.map_alone`), not in a group."""
        if self.processes.wants_own(jobs):
            self.calls += 1
            self.batches += 1
            return await self.processes.map_alone(jobs)
        fut: asyncio.Future[list[Prepared]] = asyncio.get_running_loop().create_future()
        self._asked.append((list(jobs), fut))
        self._arrived.set()
        if self._loop is None:
            self._loop = asyncio.create_task(self._run_loop(), name="prepare-groups")
        return await fut

    async def _run_loop(self) -> None:
        while True:
            while not self._asked:
                self._arrived.clear()
                await self._arrived.wait()
            try:
                child = await self.processes.acquire()
            except Exception as exc:  # no process could start: the askers raise it
                while self._asked:
                    _, fut = self._asked.popleft()
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            group = self._take()
            if not group:  # every asker was cancelled meanwhile
                self.processes.release(child)
                continue
            task = asyncio.create_task(self._prepare(child, group))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _take(self) -> list[tuple[list[Job], asyncio.Future[list[Prepared]]]]:
        group: list[tuple[list[Job], asyncio.Future[list[Prepared]]]] = []
        n = 0
        while self._asked:
            jobs, fut = self._asked[0]
            if fut.done():  # its lane was cancelled (the pipeline is closing)
                self._asked.popleft()
                continue
            large = sum(len(raw or b"") for raw, _, _ in jobs) >= self.alone_bytes
            if group and (large or n + len(jobs) > self.max_messages):
                break
            self._asked.popleft()
            group.append((jobs, fut))
            n += len(jobs)
            if large:
                break
        return group

    async def _prepare(
        self, child: Any, group: list[tuple[list[Job], asyncio.Future[list[Prepared]]]]
    ) -> None:
        self.calls += 1
        self.batches += len(group)

        def on_part(i: int, prepared: list[Prepared]) -> None:
            # A lane publishes its batch as soon as it is back, not after the whole call.
            fut = group[i][1]
            if not fut.done():
                fut.set_result(prepared)

        ends = list(itertools.accumulate(len(jobs) for jobs, _ in group))
        try:
            prepared = await self.processes.map(
                [j for jobs, _ in group for j in jobs], child, ends=ends, on_part=on_part
            )
        except BaseException as exc:
            for _, fut in group:
                if fut.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    fut.cancel()
                else:
                    fut.set_exception(exc)  # the lanes raise it: the pipeline stops
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        at = 0
        for jobs, fut in group:
            if not fut.done():
                fut.set_result(prepared[at : at + len(jobs)])
            at += len(jobs)

    def close(self) -> None:
        for task in [self._loop, *self._running]:
            if task is not None:
                task.cancel()
        self._loop = None


class PublishRounds:
    """The lanes' publishes, grouped into one send round for every batch handed over; up to
    `in_flight` rounds at once."""

    def __init__(self, handler: DispatchHandler, *, in_flight: int = 2) -> None:
        self.handler = handler
        self.in_flight = in_flight
        """Rounds under way at once. With one, a batch ready just after a round started waited
        for that round's two acknowledgements before its own audits could go out (at a steady
        rate under load, tens of ms); another lane's round has nothing to wait for."""
        self.rounds = 0
        """Send rounds made."""
        self.batches = 0
        """Lane batches published (over `rounds` rounds)."""
        self._asked: list[tuple[Sequence[Prepared], asyncio.Future[Unsent]]] = []
        self._arrived = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(in_flight)

    async def publish(self, batch: Sequence[Prepared]) -> None:
        """Return once every record of `batch` is acknowledged (as `handler.publish`)."""
        fut: asyncio.Future[Unsent] = asyncio.get_running_loop().create_future()
        self._asked.append((batch, fut))
        self._arrived.set()
        if self._loop is None:
            self._loop = asyncio.create_task(self._run_loop(), name="publish-rounds")
        unsent = await fut
        await self.handler.finish(batch, unsent)

    async def _run_loop(self) -> None:
        # A lane hands over its next batch only once the previous one is acknowledged, so
        # rounds under way at once never hold two batches of one partition: per-partition
        # order holds, and within each round no final record goes before its audits' acks.
        while True:
            while not self._asked:
                self._arrived.clear()
                await self._arrived.wait()
            await self._slots.acquire()  # batches keep joining the group while we wait
            group = [(b, f) for b, f in self._asked if not f.done()]
            self._asked = []
            if not group:
                self._slots.release()
                continue
            self.rounds += 1
            self.batches += len(group)
            task = asyncio.create_task(self._round(group))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _round(self, group: list[tuple[Sequence[Prepared], asyncio.Future[Unsent]]]) -> None:
        try:
            unsent = await self.handler.publish_round([b for b, _ in group])
        except Exception as exc:  # a bug: the lanes raise it (the pipeline stops)
            for _, fut in group:
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            self._slots.release()
        for (_, fut), rest in zip(group, unsent, strict=True):
            if not fut.done():
                fut.set_result(rest)

    def close(self) -> None:
        for task in [self._loop, *self._running]:
            if task is not None:
                task.cancel()
        self._loop = None
