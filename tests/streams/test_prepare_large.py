"""Prepare processes and large days: a lane's batch comes back as soon as it is prepared, and a
day of `own_bytes` or more gets a child of its own (streams/prepare_processes.py, batching.py)."""

from __future__ import annotations

import asyncio

from optimizer.generate import generate_day
from streams import codec
from streams.agents import Source
from streams.batching import PrepareGroups
from streams.prepare_processes import PrepareProcesses
from tests.streams.test_prepare_processes import dying_handler


def _job(bookings: int, drivers: int, partition: int, seed: int = 3) -> tuple[bytes, bytes, Source]:
    raw = codec.encode(generate_day(bookings, drivers, seed=seed))
    return raw, f"k{partition}".encode(), Source("in", partition, 0)


async def test_a_lane_gets_its_batch_before_the_rest_of_a_shared_call() -> None:
    """Two lanes' batches in one call to the child: the small one is handed back while the
    large one (seconds of pass) is still being prepared, not when the whole call ends."""
    procs = PrepareProcesses(dying_handler, 1, dying_handler(), held_seconds=60)
    await procs.start()
    groups = PrepareGroups(procs, max_messages=64, alone_bytes=10**9)  # never alone
    try:
        first = asyncio.create_task(groups.map([_job(300, 40, 0)]))  # the child is busy ...
        await asyncio.sleep(0.05)
        small = asyncio.create_task(groups.map([_job(10, 3, 1)]))  # ... so these two share
        large = asyncio.create_task(groups.map([_job(1000, 100, 2)]))  # the next call
        await first
        got = await small
        assert not large.done(), "the small batch came back only with the large one"
        assert groups.calls == 2 and groups.batches == 3
        assert got[0].handled.kind == "optimized" and got[0].raw is not None
        assert (await large)[0].handled.kind == "optimized"
    finally:
        groups.close()
        procs.close()


async def test_a_large_day_gets_a_child_of_its_own() -> None:
    """A day of `own_bytes` or more is prepared in a child started for it: the pool's child
    answers small days meanwhile at once (no held time, no extra child), and the large day's
    child is gone after it."""
    procs = PrepareProcesses(dying_handler, 1, dying_handler(), held_seconds=60, own_bytes=200_000)
    await procs.start()
    pool = procs.pids
    groups = PrepareGroups(procs, max_messages=64)
    try:
        large = asyncio.create_task(groups.map([_job(1000, 100, 0)]))  # ~336 KB
        await asyncio.sleep(0.3)
        quick = await groups.map([_job(10, 3, 1)])
        assert not large.done(), "the small day waited for the large one"
        assert quick[0].handled.kind == "optimized"
        assert (await large)[0].handled.kind == "optimized"
        assert procs.own_started == 1 and procs.grown == 0
        assert procs.pids == pool  # the large day's child is stopped, the pool unchanged
    finally:
        groups.close()
        procs.close()


async def test_small_days_never_get_a_child_of_their_own() -> None:
    """A long lane batch of small days (more bytes in all than `own_bytes`) stays in the pool."""
    procs = PrepareProcesses(dying_handler, 1, dying_handler(), own_bytes=20_000)
    await procs.start()
    groups = PrepareGroups(procs, max_messages=64)
    try:
        got = await groups.map([_job(10, 3, 0, seed=s) for s in range(8)])  # ~32 KB in all
        assert len(got) == 8 and procs.own_started == 0
    finally:
        groups.close()
        procs.close()


async def test_a_large_day_that_kills_its_own_child_loses_nothing() -> None:
    """The own child dies on its input: the input is retried in the pool, and when it kills
    that child too it goes out without a pass (here: a dead letter, it is not a valid day);
    the pool is replaced, the own child is not."""
    from tests.streams.test_prepare_processes import DIE

    procs = PrepareProcesses(dying_handler, 1, dying_handler(), own_bytes=1)
    await procs.start()
    groups = PrepareGroups(procs, max_messages=64)
    try:
        got = await groups.map([(DIE, b"x", Source("in", 0, 7))])
        assert [p.handled.kind for p in got] == ["dead_letter"]
        assert got[0].source.offset == 7
        assert procs.own_started == 1 and procs.set_aside == 1
        assert procs.restarts == 1  # the pool child, not the own one
    finally:
        groups.close()
        procs.close()
