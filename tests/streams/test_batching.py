"""Lanes' prepare calls and send rounds grouped across partitions (streams/batching.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from streams import codec
from streams.agents import Prepared, Source
from streams.batching import PrepareGroups, PublishRounds
from streams.pipeline import Pipeline
from tests.streams.test_pipeline_unit import Acks, Producer, day, handler

Job = tuple[bytes | None, bytes | None, Source]


class FakeProcesses:
    """One 'child': `acquire` waits while it is busy; `map` records each call's jobs."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.calls: list[list[Job]] = []
        self._idle: asyncio.Queue[str] = asyncio.Queue()
        self._idle.put_nowait("child")
        self.prepare = handler(Producer()).prepare

    def wants_own(self, jobs: list[Job]) -> bool:
        return False

    async def acquire(self) -> Any:
        return await self._idle.get()

    def release(self, child: Any) -> None:
        self._idle.put_nowait(child)

    async def map(self, jobs: list[Job], child: Any = None, **parts: Any) -> list[Prepared]:
        assert child == "child"
        self.calls.append(jobs)
        await asyncio.sleep(self.seconds)
        self._idle.put_nowait(child)
        return [self.prepare(*job) for job in jobs]


def _job(i: int, partition: int, raw: bytes | None = None) -> Job:
    return (raw if raw is not None else codec.encode(day(i)), None, Source("in", partition, i))


async def test_batches_asked_while_the_child_is_busy_go_in_one_call() -> None:
    """The first batch goes at once; the three asked meanwhile share the next call, and every
    lane gets its own results, in order."""
    procs = FakeProcesses()
    groups = PrepareGroups(procs, max_messages=64)  # type: ignore[arg-type]
    first = asyncio.create_task(groups.map([_job(0, 0)]))
    await asyncio.sleep(0.01)  # the child has it
    rest = [asyncio.create_task(groups.map([_job(10 * p + 1, p), _job(10 * p + 2, p)]))
            for p in (1, 2, 3)]  # fmt: skip
    results = [await first] + [await t for t in rest]
    groups.close()
    assert [len(c) for c in procs.calls] == [1, 6]
    assert (groups.calls, groups.batches) == (2, 4)
    wanted = [[(0, 0)]] + [[(p, 10 * p + 1), (p, 10 * p + 2)] for p in (1, 2, 3)]
    assert [[(r.source.partition, r.source.offset) for r in got] for got in results] == wanted
    assert all(r.handled.kind == "optimized" for got in results for r in got)


async def test_a_large_batch_is_prepared_alone() -> None:
    """A batch of `alone_bytes` or more never shares a call with other partitions' batches."""
    procs = FakeProcesses()
    groups = PrepareGroups(procs, max_messages=64, alone_bytes=6000)  # type: ignore[arg-type]
    busy = asyncio.create_task(groups.map([_job(0, 0)]))
    await asyncio.sleep(0.01)
    large = codec.encode(day(7, bookings=40, drivers=6))  # ~14 KB
    asked = [
        asyncio.create_task(groups.map([_job(1, 1)])),
        asyncio.create_task(groups.map([_job(2, 2, large)])),
        asyncio.create_task(groups.map([_job(3, 3)])),
    ]
    await busy
    await asyncio.gather(*asked)
    groups.close()
    assert [[j[2].partition for j in c] for c in procs.calls] == [[0], [1], [2], [3]]


async def test_a_group_holds_at_most_max_messages_beyond_its_first_batch() -> None:
    procs = FakeProcesses()
    groups = PrepareGroups(procs, max_messages=4)  # type: ignore[arg-type]
    busy = asyncio.create_task(groups.map([_job(0, 0)]))
    await asyncio.sleep(0.01)
    asked = [asyncio.create_task(groups.map([_job(p, p), _job(p + 10, p)])) for p in (1, 2, 3)]
    await busy
    await asyncio.gather(*asked)
    groups.close()
    assert [len(c) for c in procs.calls] == [1, 4, 2]


async def test_partitions_ready_together_share_send_rounds() -> None:
    """Six partitions' batches published in fewer rounds than batches; each offset acked once,
    in order, and every Optimized after its audits' acknowledgements (as in
    test_audits_are_acknowledged_before_their_optimized_is_sent)."""
    producer = Producer(delay=0.05)  # slow acks: batches pile up while a round waits
    acks = Acks()
    pipe = Pipeline(handler(producer), batch_max=2)
    for i in range(36):
        await pipe.submit(acks.item(codec.encode(day(i)), i % 6, i // 6, f"d-{i}".encode()))
    await pipe.drain(timeout=60)
    await pipe.close()
    assert pipe.rounds.batches >= 6
    assert pipe.rounds.rounds < pipe.rounds.batches
    for p in range(6):
        assert [o for q, o in acks.order if q == p] == list(range(6))
    assert len(producer.acked("out")) == 36


async def test_a_batch_ready_during_a_round_does_not_wait_for_it() -> None:
    """With a round under way (slow acks), another lane's batch starts its own round at once
    instead of waiting for the first round's two acknowledgements; each batch's Optimized is
    still sent only after its own audits are acknowledged."""
    producer = Producer(delay=0.2)
    h = handler(producer)
    rounds = PublishRounds(h)
    a = [h.prepare(codec.encode(day(1)), b"d-1", Source("in", 0, 0))]
    b = [h.prepare(codec.encode(day(2)), b"d-2", Source("in", 1, 0))]
    assert a[0].audits and b[0].audits
    first = asyncio.create_task(rounds.publish(a))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(rounds.publish(b))
    await asyncio.gather(first, second)
    rounds.close()
    assert rounds.rounds == 2
    log = [(what, topic, key) for what, topic, key, _ in producer.log]
    b_starts = log.index(("send", "audit", b"d-2"))
    a_done = max(i for i, e in enumerate(log) if e == ("acked", "out", b"d-1"))
    assert b_starts < a_done, "the second batch waited for the first round to finish"
    for key in (b"d-1", b"d-2"):
        last_audit_ack = max(i for i, e in enumerate(log) if e == ("acked", "audit", key))
        assert log.index(("send", "out", key)) > last_audit_ack
