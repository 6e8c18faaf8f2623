"""The threads that prepare (decode, optimize, encode) input messages: as few as keep lanes moving.

Preparing is CPU-bound Python under one GIL, so more threads never add throughput; they cost
CPU (measured with bench/stream_throughput.py on 10x3 days, one worker: 11-17 ms of worker CPU
per dispatch with six threads, 8.5-8.9 ms with one). But one thread alone would let a large day
(seconds of pass) hold every other partition's small days. So `PrepareThreads` runs one thread,
and starts another only when work is waiting and every thread has been on the same message for
more than `slow_seconds` (a large day, or a pass stuck for any reason); an extra thread stops
as soon as it finishes a job while no other thread is held (or after `idle_seconds` without
work). While two threads run, the GIL shares the CPU between
them, so small days go on at about half speed beside a large one instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

log = structlog.get_logger("dispatch_rl.streams")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Job(Generic[T, R]):
    fn: Callable[[T], R]
    items: Sequence[T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[R]]


class PrepareThreads:
    """A thread pool of one that grows while its threads are held by slow messages."""

    def __init__(
        self,
        *,
        max_threads: int = 4,
        slow_seconds: float = 0.5,
        idle_seconds: float = 10.0,
        name: str = "prepare",
    ) -> None:
        self.max_threads = max(1, max_threads)
        self.slow_seconds = slow_seconds
        self.idle_seconds = idle_seconds
        self.name = name
        self.started = 0
        """Threads started so far (the first one included)."""
        self._jobs: queue.SimpleQueue[_Job[Any, Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._item_since: dict[int, float | None] = {}
        """Per running thread: when it began its current message (None: waiting for work)."""
        self._closed = False

    @property
    def threads(self) -> int:
        """Threads running now."""
        with self._lock:
            return len(self._item_since)

    async def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`[fn(x) for x in items]` on one of the threads; `fn` exceptions are raised here."""
        if self._closed:
            raise RuntimeError("PrepareThreads is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[R]] = loop.create_future()
        self._jobs.put(_Job(fn, items, loop, future))
        self._grow_if_held()
        while True:
            # The waiting caller is the watchdog: while its job waits, it checks whether every
            # thread is held by one slow message, and if so starts another.
            done, _ = await asyncio.wait({future}, timeout=self.slow_seconds)
            if done:
                return future.result()
            self._grow_if_held()

    def close(self) -> None:
        """Stop the threads once their current job is done (jobs still queued are dropped)."""
        self._closed = True
        with self._lock:
            n = len(self._item_since)
        while True:  # drop what is queued: its callers are being cancelled too
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.loop.call_soon_threadsafe(_cancel, job.future)
        for _ in range(n):
            self._jobs.put(None)

    def _grow_if_held(self) -> None:
        with self._lock:
            if self._closed or len(self._item_since) >= self.max_threads:
                return
            if self._item_since:
                if self._jobs.empty():
                    return
                now = time.monotonic()
                for since in self._item_since.values():
                    if since is None or now - since < self.slow_seconds:
                        return  # a thread is free or moving on: the job will be taken soon
            self.started += 1
            thread = threading.Thread(
                target=self._work, name=f"{self.name}_{self.started}", daemon=True
            )
            # Registered before it runs, so two callers do not both start one for one need.
            self._item_since[-self.started] = None
            thread.start()
            running = len(self._item_since)
        if running > 1:
            log.info(
                "prepare_thread_started", running=running, reason="threads held by slow messages"
            )

    def _work(self) -> None:
        me = threading.get_ident()
        with self._lock:
            # Replace the placeholder this thread was registered under.
            placeholder = next(k for k in self._item_since if k < 0)
            del self._item_since[placeholder]
            self._item_since[me] = None
        try:
            while True:
                try:
                    job = self._jobs.get(timeout=self.idle_seconds)
                except queue.Empty:
                    with self._lock:
                        if len(self._item_since) > 1:
                            return  # an extra thread that is no longer needed
                    continue
                if job is None:
                    return
                self._run(me, job)
                if self._spare(me):
                    return
        finally:
            with self._lock:
                self._item_since.pop(me, None)

    def _spare(self, me: int) -> bool:
        """True (and this thread leaves) when there are others and none is held by a slow
        message: back to one thread as soon as the large day that needed another is done."""
        with self._lock:
            if len(self._item_since) < 2:
                return False
            now = time.monotonic()
            for tid, since in self._item_since.items():
                if tid != me and since is not None and now - since >= self.slow_seconds:
                    return False
            del self._item_since[me]
            return True

    def _run(self, me: int, job: _Job[Any, Any]) -> None:
        out = []
        try:
            for item in job.items:
                self._item_since[me] = time.monotonic()
                out.append(job.fn(item))
        except BaseException as exc:  # the caller decides; this thread goes on
            job.loop.call_soon_threadsafe(_settle, job.future, None, exc)
        else:
            job.loop.call_soon_threadsafe(_settle, job.future, out, None)
        finally:
            self._item_since[me] = None


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _cancel(future: asyncio.Future[Any]) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):
        future.cancel()
