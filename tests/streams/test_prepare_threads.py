"""PrepareThreads: one thread while work moves, another only while one is held by a slow item."""

from __future__ import annotations

import asyncio
import threading

import pytest

from streams.prepare_threads import PrepareThreads


async def test_quick_work_from_many_callers_runs_on_one_thread() -> None:
    """Six lanes submitting small batches never need a second thread."""
    pool = PrepareThreads(max_threads=6, slow_seconds=0.5)
    names: set[str] = set()

    def work(x: int) -> int:
        names.add(threading.current_thread().name)
        return x * 2

    results = await asyncio.gather(
        *(pool.map(work, list(range(i, i + 5))) for i in range(0, 300, 5))
    )
    pool.close()
    assert [r for batch in results for r in batch] == [2 * x for x in range(300)]
    assert pool.started == 1 and len(names) == 1


async def test_a_held_thread_gets_a_helper_which_leaves_after() -> None:
    """While one item holds the only thread, another caller's work runs on a second thread;
    once the slow item is done, the pool is back to one thread."""
    pool = PrepareThreads(max_threads=4, slow_seconds=0.05)
    release = threading.Event()

    def slow(_: int) -> str:
        release.wait(10)
        return "slow"

    held = asyncio.ensure_future(pool.map(slow, [0]))
    await asyncio.sleep(0.1)  # the slow item runs
    assert await asyncio.wait_for(pool.map(lambda x: x + 1, [1, 2]), timeout=5) == [2, 3]
    assert pool.started == 2 and not held.done()
    release.set()
    assert await held == ["slow"]
    await pool.map(lambda x: x, [0])  # a job finished with no thread held: a spare leaves
    for _ in range(100):
        if pool.threads == 1:
            break
        await asyncio.sleep(0.01)
    assert pool.threads == 1
    pool.close()


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on() -> None:
    """A raising item fails its own job only."""
    pool = PrepareThreads(max_threads=2)

    def boom(_: int) -> int:
        raise ValueError("bad item")

    with pytest.raises(ValueError, match="bad item"):
        await pool.map(boom, [1])
    assert await pool.map(lambda x: x, [7]) == [7]
    assert pool.started == 1
    pool.close()


async def test_never_more_than_max_threads() -> None:
    """Every thread held: no thread beyond `max_threads`; queued work waits for one."""
    pool = PrepareThreads(max_threads=2, slow_seconds=0.02)
    release = threading.Event()
    held = [asyncio.ensure_future(pool.map(lambda _: release.wait(10), [0])) for _ in range(4)]
    await asyncio.sleep(0.3)
    assert pool.threads == 2 and sum(h.done() for h in held) == 0
    release.set()
    assert all(await asyncio.gather(*held))
    assert pool.started == 2
    pool.close()
