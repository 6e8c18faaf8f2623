"""Preparing input messages in child processes, so the pass does not share the event loop's GIL.

With `DISPATCH_RL_PREPARE_PROCESSES=N` (N >= 1) a worker prepares (decodes, optimizes,
encodes) in N child processes instead of a thread: the event loop (Kafka fetches, sends,
acks) no longer waits for the GIL behind the pass, and with N >= 2 the pass of one worker uses
more than one core. A large day holds one process; a batch that finds every process held for
half a second on one message starts one extra process, so other partitions' small days do not
wait behind it, even with N = 1 (the default); it stops again once two are idle (beyond
`max_processes`), else as below.

The pool also follows the load, between N and `max_processes`
(`DISPATCH_RL_PREPARE_PROCESSES_MAX`, default: 2 where the worker may use 2 cores or more):
when batches waited for a child during most of `grow_seconds` (every child busy: a burst), one
more child starts in the background (the batches go on meanwhile), and a child beyond N that
stays idle for `shrink_seconds` stops. So an idle worker keeps the memory of N children (the
default 1: ~230 MB in all) and a burst gets the throughput of two.

A child is `python -m streams.prepare_child` (not `multiprocessing`: its spawn re-imports
the parent's main script, and fork would copy the worker's threads mid-flight), fed pickled
frames on its stdin: first the factory of its `DispatchHandler` (`settings_handler`: the
registry's champion, like the worker's own provider, refreshed every `model_poll_seconds`),
then batches of `(raw, key, source)`, answered one message at a time (the worker's end of
one child: `streams.prepare_pipe`).
A child that dies (killed, out of memory) is started again and its batch retried one message at
a time; a message that kills a child on its own gets status `fallback` (the heuristic
assignment, no pass) prepared in the worker, so no input is lost and the agent goes on. A child
whose worker dies reads end-of-file and exits.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from functools import partial

import structlog

from streams.agents import DispatchHandler, Prepared
from streams.cpu_quota import cgroup_cpus
from streams.prepare_child import Job, settings_handler
from streams.prepare_pipe import ChildDied, OnPart, PrepareChild
from streams.settings import Settings

__all__ = ["ChildDied", "Job", "PrepareProcesses", "settings_handler"]

log = structlog.get_logger("dispatch_rl.streams")


class _Unavailable(Exception):
    """No prepare process will be started any more (`PrepareProcesses.failed`)."""


_START_TRIES = 4  # a replacement that fails this often in a row: prepare in a thread instead
_BUSY_SHARE = 0.9
"""Grow when batches waited for a child during this share of `grow_seconds` or more, and the
host's CPUs were idle for `free_cores` cores' worth meanwhile (Linux: /proc/stat; elsewhere
not checked): a child more on a host whose cores are all busy (two workers of a 2-core host in
a burst) would only take memory and add context switches."""


def _host_cpu() -> tuple[int, int] | None:
    """(idle, total) jiffies of all the host's CPUs so far (None: no /proc/stat)."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user .. steal


def _free_cores(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """How many cores' worth of CPU time the host left idle between two `_host_cpu` readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    cores = os.cpu_count() or 1
    return cores * (after[0] - before[0]) / (after[1] - before[1])


class PrepareProcesses:
    """`processes` children preparing batches of messages (see the module docstring)."""

    def __init__(
        self,
        factory: Callable[[], DispatchHandler],
        processes: int,
        fallback: DispatchHandler,
        *,
        refresh_seconds: float = 5.0,
        held_seconds: float = 0.5,
        own_bytes: int = 0,
        max_processes: int | None = None,
        grow_seconds: float = 2.0,
        shrink_seconds: float = 30.0,
        free_cores: float = 0.25,
    ) -> None:
        """`factory`: picklable, builds a child's handler; `fallback`: the worker's handler,
        used only for a message whose child died on it. A batch that finds every child held
        for `held_seconds` (a large day) starts one extra child rather than wait behind it;
        the extra one stops again once two children are idle. Between `processes` and
        `max_processes` (None: `processes`, no growth) the pool follows the load: one more
        child after batches waited for one during most of `grow_seconds` while the host left
        `free_cores` cores' worth of CPU idle, one fewer after a child beyond `processes` was
        idle for `shrink_seconds`."""
        self.factory = factory
        self.processes = max(1, processes)
        self.max_processes = max(self.processes, max_processes or 0)
        self.grow_seconds = grow_seconds
        self.shrink_seconds = shrink_seconds
        self.free_cores = free_cores
        self.scaled_up = 0
        """Children started because every child was busy for `grow_seconds` (a burst)."""
        self.scaled_down = 0
        """Children beyond `processes` stopped after `shrink_seconds` idle."""
        self.fallback = fallback
        self.refresh_seconds = refresh_seconds
        self.restarts = 0
        """Children started again after one died."""
        self.set_aside = 0
        """Messages published without a pass because a child died preparing them alone."""
        self.held_seconds = held_seconds
        self.grown = 0
        """Extra children started because every child was held by a slow batch."""
        self.own_bytes = own_bytes
        """Inputs this large (bytes; 0: none) get a child of their own (`map_alone`)."""
        self.own_started = 0
        """Children started for one large input alone."""
        self._own_lock = asyncio.Lock()
        self._growing = False
        self.failed: str | None = None
        """Why no child can be started any more (then batches are prepared in a thread of the
        worker with its own handler: slower, but nothing stalls)."""
        # None in the queue: no child will come (`failed`); it wakes every waiter in turn.
        self._idle: asyncio.Queue[PrepareChild | None] | None = None
        self._children: set[PrepareChild] = set()
        self._respawning: set[asyncio.Task[None]] = set()
        # The load: how long batches waited for a child since `_window_start`.
        # (reset by `start`, before any batch)
        self._window_start = 0.0
        self._window_cpu: tuple[int, int] | None = None
        self._waited = 0.0
        self._idle_since: dict[PrepareChild, float] = {}
        self._shrink_timer: asyncio.TimerHandle | None = None

    @classmethod
    def for_settings(
        cls, settings: Settings, processes: int, fallback: DispatchHandler
    ) -> PrepareProcesses:
        return cls(
            partial(settings_handler, settings),
            processes,
            fallback,
            refresh_seconds=settings.model_poll_seconds,
            own_bytes=settings.prepare_own_process_bytes,
            max_processes=settings.prepare_processes_limit(),
            grow_seconds=settings.prepare_grow_seconds,
            shrink_seconds=settings.prepare_shrink_seconds,
        )

    @property
    def running(self) -> int:
        """Children serving batches now (not counting one started for a large input alone)."""
        return len(self._pool())

    @property
    def pids(self) -> list[int]:
        return sorted(c.proc.pid for c in self._children)

    async def start(self) -> None:
        """Start the children and wait until each has loaded its model."""
        t = time.perf_counter()
        self._idle = asyncio.Queue()
        children = await asyncio.gather(*(self._spawn() for _ in range(self.processes)))
        for child in children:
            self._idle.put_nowait(child)
        self._window_start, self._window_cpu, self._waited = time.monotonic(), _host_cpu(), 0.0
        log.info(
            "prepare_processes_started",
            processes=self.processes,
            max_processes=self.max_processes,
            cpu_quota=cgroup_cpus(),  # a container's CPU limit (None: none), which caps the max
            seconds=round(time.perf_counter() - t, 2),
        )

    async def _spawn(self, *, own: bool = False) -> PrepareChild:
        child = await PrepareChild.start(own=own)
        self._children.add(child)
        try:
            await child.call((self.factory, self.refresh_seconds))
        except BaseException:
            self._drop(child)
            raise
        return child

    def _drop(self, child: PrepareChild) -> None:
        child.kill()
        self._children.discard(child)
        self._idle_since.pop(child, None)

    async def acquire(self) -> PrepareChild | None:
        """An idle child, taken for a `map` call (waits as `map` would, growing by one when
        every child is held by one message); None when no child will come (`failed`)."""
        if self.failed is not None:
            return None
        if self._idle is None:
            await self.start()
        assert self._idle is not None
        child = await self._next_child(self._idle)
        if child is None:
            self._idle.put_nowait(None)  # for the next waiter
        return child

    def release(self, child: PrepareChild | None) -> None:
        """Give back a child taken by `acquire` and not used."""
        if child is not None and self._idle is not None:
            self._put_idle(child)

    async def map(
        self,
        jobs: Sequence[Job],
        child: PrepareChild | None = None,
        *,
        ends: Sequence[int] = (),
        on_part: OnPart | None = None,
    ) -> list[Prepared]:
        """`Prepared` for each `(raw, key, source)`, in order; never raises for a dead child.
        `child`: one taken by `acquire` for this call (else one is taken here). `ends` and
        `on_part`: parts of `jobs` handed over as soon as each is prepared (see
        `PrepareChild.prepare`); a part not handed over so (its child died) is only in the
        result."""
        try:
            return await self._run(jobs, child, ends, on_part)
        except ChildDied:
            pass
        except _Unavailable:
            return await self._in_thread(jobs)
        out: list[Prepared] = []
        for i, job in enumerate(jobs):  # one at a time: find the message that kills a child
            try:
                out += await self._run([job])
            except _Unavailable:
                # One of these killed a child: not run in the worker itself (it could kill it
                # too, and again after every restart), they go out without a pass.
                reason = "the process running the pass died on this batch; none could restart"
                return out + [self.fallback.prepare_without_pass(*j, reason) for j in jobs[i:]]
            except ChildDied:
                self.set_aside += 1
                raw, key, source = job
                log.error(
                    "prepare_process_died_on_message",
                    partition=source.partition,
                    offset=source.offset,
                    bytes=len(raw or b""),
                    published="status fallback, heuristic assignment",
                )
                out.append(
                    self.fallback.prepare_without_pass(
                        raw, key, source, "the process running the pass died on this input"
                    )
                )
        return out

    def wants_own(self, jobs: Sequence[Job]) -> bool:
        """True when one of `jobs` is large enough for a child of its own (`own_bytes`)."""
        return self.own_bytes > 0 and max(len(raw or b"") for raw, _, _ in jobs) >= self.own_bytes

    async def map_alone(self, jobs: Sequence[Job]) -> list[Prepared]:
        """`map` in a child started for these jobs alone and stopped after them: a large day
        never holds the children serving the small ones (they go on at once, where the
        held rule would make them wait 0.5 s plus an extra child's start). One such child at
        a time (a second large day waits for the first: memory); if it cannot start, the
        pool's children serve (`map`)."""
        async with self._own_lock:
            if self.failed is None:
                try:
                    child = await self._spawn(own=True)
                except Exception as exc:
                    log.warning("prepare_process_own_failed", error=repr(exc), using="the pool")
                else:
                    self.own_started += 1
                    log.info(
                        "prepare_process_own_started",
                        bytes=max(len(raw or b"") for raw, _, _ in jobs),
                        partition=jobs[0][2].partition if jobs else None,
                    )
                    return await self.map(jobs, child)
        return await self.map(jobs)

    async def _in_thread(self, jobs: Sequence[Job]) -> list[Prepared]:
        handler = self.fallback
        return await asyncio.to_thread(lambda: [handler.prepare(*job) for job in jobs])

    async def _run(
        self,
        jobs: Sequence[Job],
        child: PrepareChild | None = None,
        ends: Sequence[int] = (),
        on_part: OnPart | None = None,
    ) -> list[Prepared]:
        if child is None:
            child = await self.acquire()
        if child is None:
            raise _Unavailable(self.failed or "no prepare process")
        assert self._idle is not None
        replace = True
        try:
            prepared = await child.prepare(jobs, ends, on_part)
            replace = False
        except ChildDied as exc:
            self.restarts += not child.own  # a large day's own child is not replaced
            log.error(
                "prepare_process_died", error=str(exc), batch=len(jobs), restarting=not child.own
            )
            raise
        finally:
            # A child that died, or was left mid-answer by a cancellation, is replaced.
            if child.own:
                self._drop(child)  # its large input is done (or killed it): the pool is as it was
            elif replace:
                self._drop(child)
                self._respawning.add(asyncio.create_task(self._respawn(self._idle)))
            elif len(self._pool()) > self.max_processes and self._idle.qsize() > 0:
                self._drop(child)  # the slow batch is over: back to `processes` children
            else:
                self._put_idle(child)
        return prepared

    def _put_idle(self, child: PrepareChild) -> None:
        """`child` waits for the next batch; beyond `processes` children, it stops after
        `shrink_seconds` of that (`_shrink`)."""
        assert self._idle is not None
        self._idle_since[child] = time.monotonic()
        self._idle.put_nowait(child)
        if len(self._pool()) > self.processes and self._shrink_timer is None:
            loop = asyncio.get_running_loop()
            self._shrink_timer = loop.call_later(self.shrink_seconds, self._shrink)

    def _shrink(self) -> None:
        """Stop the children beyond `processes` that have been idle `shrink_seconds`."""
        self._shrink_timer = None
        idle = self._idle
        if idle is None:
            return
        now = time.monotonic()
        waiting: list[PrepareChild | None] = []
        while not idle.empty():
            waiting.append(idle.get_nowait())
        for child in waiting:
            since = self._idle_since.get(child, now) if child is not None else now
            stale = now - since >= self.shrink_seconds
            if child is not None and stale and len(self._pool()) > self.processes:
                self._drop(child)
                self.scaled_down += 1
                log.info("prepare_process_stopped", reason="idle", children=len(self._children))
            else:
                idle.put_nowait(child)
        if len(self._pool()) > self.processes:  # some are busy or idle for less: look again
            self._shrink_timer = asyncio.get_running_loop().call_later(
                self.shrink_seconds / 2, self._shrink
            )

    def _note_wait(self, waited: float) -> None:
        """A batch waited `waited` s for a child: when batches waited during most of the last
        `grow_seconds`, start one more child (up to `max_processes`) in the background."""
        self._waited += waited
        now = time.monotonic()
        span = now - self._window_start
        if span < self.grow_seconds:
            return
        busy = self._waited / span
        cpu = _host_cpu()
        free = _free_cores(self._window_cpu, cpu)
        self._window_start, self._window_cpu, self._waited = now, cpu, 0.0
        if busy < _BUSY_SHARE or self._growing or len(self._pool()) >= self.max_processes:
            return
        if free is not None and free < self.free_cores:
            return  # the host's cores are taken (other workers, the broker): no gain, only memory
        self._growing = True
        task = asyncio.create_task(self._grow(busy))
        self._respawning.add(task)
        task.add_done_callback(self._respawning.discard)

    async def _grow(self, busy: float) -> None:
        try:
            child = await self._spawn()
        except Exception as exc:  # the pool goes on as it is
            log.warning("prepare_process_extra_failed", error=repr(exc))
            return
        finally:
            self._growing = False
        if self._idle is None:  # closed meanwhile
            self._drop(child)
            return
        self.scaled_up += 1
        log.info("prepare_process_added", reason=f"batches waited {busy:.0%} of "
                 f"{self.grow_seconds:g} s", children=len(self._children))  # fmt: skip
        self._put_idle(child)

    async def _next_child(self, idle: asyncio.Queue[PrepareChild | None]) -> PrepareChild | None:
        """An idle child; when every child has been on ONE message for `held_seconds` (a
        large day), one extra child (one at a time), so small days of other partitions do not
        wait behind it. Unlike a thread of the worker, a child keeps a message that kills its
        process away from the worker.

        Per message, not per batch: a long batch of small days (or a child slowed down by a
        busy CPU) is no reason for another process, whose start costs 1-3 s of CPU (imports,
        model, warm-up). Measured with the per-batch rule at load ~5: two extra children per
        1,000-day run, ~4 ms of CPU per dispatch more than the pass itself.
        """
        if not idle.empty():  # the common case: no timer task per batch
            return idle.get_nowait()
        wait = min(self.held_seconds, self.grow_seconds)
        last = time.monotonic()
        while True:
            try:
                child = await asyncio.wait_for(idle.get(), wait)
            except TimeoutError:
                now = time.monotonic()
                self._note_wait(now - last)  # a long wait counts while it lasts
                last = now
            else:
                self._note_wait(time.monotonic() - last)
                return child
            if self._all_held():
                break
            wait = max(0.05, min(self.held_seconds / 4, self.grow_seconds))
        if self._growing:
            return await idle.get()
        self._growing = True
        try:
            child = await self._spawn()
        except Exception as exc:  # cannot start one now: wait for a held child after all
            log.warning("prepare_process_extra_failed", error=repr(exc))
            return await idle.get()
        finally:
            self._growing = False
        self.grown += 1
        log.info("prepare_process_added", reason="every child held by a slow batch",
                 children=len(self._children))  # fmt: skip
        return child

    def _all_held(self) -> bool:
        """Every child is on one message for `held_seconds` or more (none idle or starting)."""
        now = time.monotonic()
        pool = self._pool()
        return bool(pool) and all(c.held(now, self.held_seconds) for c in pool)

    def _pool(self) -> list[PrepareChild]:
        """The children that serve any batch (not those started for one large input)."""
        return [c for c in self._children if not c.own]

    async def _respawn(self, idle: asyncio.Queue[PrepareChild | None]) -> None:
        delay = 0.1
        for attempt in range(1, _START_TRIES + 1):
            if idle is not self._idle:
                break
            try:
                idle.put_nowait(await self._spawn())
                break
            except Exception as exc:  # cannot start one now: try again, with backoff
                if attempt == _START_TRIES:
                    self.failed = f"{_START_TRIES} starts failed, last: {exc!r}"[:500]
                    log.error(
                        "prepare_processes_failed", error=self.failed, preparing="in a thread"
                    )
                    idle.put_nowait(None)
                    break
                log.error("prepare_process_start_failed", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)
        self._respawning.discard(asyncio.current_task())

    def close(self) -> None:
        """Stop the children (a batch being prepared is abandoned: it was not acked)."""
        self._idle = None
        if self._shrink_timer is not None:
            self._shrink_timer.cancel()
            self._shrink_timer = None
        for task in list(self._respawning):
            task.cancel()
        for child in list(self._children):
            self._drop(child)
