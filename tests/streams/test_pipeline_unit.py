"""The per-partition pipeline and the handler's sends, in memory (a scripted producer)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from optimizer.generate import generate_day
from optimizer.moves import Candidates
from optimizer.policy import GreedyPolicy
from optimizer.serving import StaticPolicyProvider
from optimizer.swap_pass import SearchState
from schemas import DeadLetter, HeuristicDone, Limits, Optimized, SwapAudit
from streams import codec
from streams.agents import Backoff, DispatchHandler, Source, TopicNames
from streams.pipeline import Item, Pipeline
from streams.settings import Settings

TOPICS = TopicNames(optimized="out", audit="audit", dead_letter="dlq")
FAST = Backoff(initial=0.001, maximum=0.01)


class Producer:
    """A scripted producer: records every send and when each is acknowledged.

    `fail(pred, times)`: the next `times` sends matching `pred(topic, key, value)` fail (in the
    acknowledgement, like a broker timeout); `refuse(pred)`: matching sends raise at once, as
    aiokafka does for a record over `max_request_size`. `delay` seconds before each ack.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.log: list[tuple[str, str, bytes | None, bytes]] = []  # (what, topic, key, value)
        self._fail: list[tuple[Callable[..., bool], list[int], BaseException]] = []
        self._refuse: list[Callable[..., bool]] = []

    def fail(self, pred: Callable[..., bool], times: int, exc: BaseException | None = None) -> None:
        self._fail.append((pred, [times], exc or KafkaTimeoutError()))

    def refuse(self, pred: Callable[..., bool]) -> None:
        self._refuse.append(pred)

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        if any(p(topic, key, value) for p in self._refuse):
            raise MessageSizeTooLargeError("too large")
        self.log.append(("send", topic, key, value))
        fut = asyncio.get_running_loop().create_future()
        error = None
        for pred, left, exc in self._fail:
            if left[0] > 0 and pred(topic, key, value):
                left[0] -= 1
                error = exc
                break

        def settle() -> None:
            if error is not None:
                self.log.append(("failed", topic, key, value))
                fut.set_exception(error)
            else:
                self.log.append(("acked", topic, key, value))
                fut.set_result(None)

        asyncio.get_running_loop().call_later(self.delay, settle)
        return fut

    def acked(self, topic: str) -> list[tuple[bytes | None, bytes]]:
        return [(k, v) for what, t, k, v in self.log if what == "acked" and t == topic]


def handler(producer: Producer, provider: Any = None, **kw: Any) -> DispatchHandler:
    settings = Settings(bootstrap_servers="127.0.0.1:9")
    return DispatchHandler(
        TOPICS,
        provider or StaticPolicyProvider(GreedyPolicy()),
        settings.dispatch_config(),
        Limits(),
        producer.send,
        backoff=FAST,
        **kw,
    )


def day(i: int, bookings: int = 10, drivers: int = 3) -> HeuristicDone:
    d = generate_day(bookings, drivers, seed=i)
    return d.model_copy(update={"event_id": f"evt-{i}", "dispatch_id": f"d-{i}"})


class Acks:
    """Records the order in which input offsets are acked, per partition."""

    def __init__(self) -> None:
        self.order: list[tuple[int, int]] = []

    def item(
        self, raw: bytes | None, partition: int, offset: int, key: bytes | None = None
    ) -> Item:
        async def ack() -> None:
            self.order.append((partition, offset))

        return Item(raw, key, Source("in", partition, offset), ack, partition)


async def test_audits_are_acknowledged_before_their_optimized_is_sent() -> None:
    """Pipelined: no Optimized leaves before every audit of its dispatch is acknowledged."""
    producer = Producer(delay=0.002)
    acks = Acks()
    pipe = Pipeline(handler(producer), batch_max=8)
    days = [day(i) for i in range(30)]
    for i, d in enumerate(days):
        await pipe.submit(acks.item(codec.encode(d), i % 3, i // 3, d.dispatch_id.encode()))
    await pipe.drain(timeout=30)
    await pipe.close()
    acked_audits: dict[bytes | None, int] = {}
    audits_total = 0
    for what, topic, key, value in producer.log:
        if topic == "audit" and what == "acked":
            acked_audits[key] = acked_audits.get(key, 0) + 1
        if topic == "out" and what == "send":
            opt = Optimized.model_validate_json(value)
            assert acked_audits.get(key, 0) == opt.moves_proposed, opt.dispatch_id
            audits_total += opt.moves_proposed
    assert audits_total > 0
    assert len(producer.acked("out")) == 30
    for p in range(3):  # every offset acked once, in order, per partition
        assert [o for q, o in acks.order if q == p] == list(range(10))


async def test_a_failed_send_is_retried_and_holds_only_its_partition() -> None:
    """Partition 0's sends fail for a while: its offsets wait; partition 1 goes on meanwhile."""
    producer = Producer()
    broken = True
    producer.fail(lambda t, k, v: broken and k == b"d-0", times=10**9)
    acks = Acks()
    h = handler(producer)
    pipe = Pipeline(h, batch_max=4)
    await pipe.submit(acks.item(codec.encode(day(0)), 0, 0, b"d-0"))
    await pipe.submit(acks.item(codec.encode(day(1)), 0, 1, b"d-1"))
    for i in range(2, 8):
        await pipe.submit(acks.item(codec.encode(day(i)), 1, i, f"d-{i}".encode()))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while len([a for a in acks.order if a[0] == 1]) < 6 and loop.time() < deadline:
        await asyncio.sleep(0.01)
    assert [o for p, o in acks.order if p == 1] == list(range(2, 8))
    await asyncio.sleep(0.2)
    assert [a for a in acks.order if a[0] == 0] == []  # still retrying d-0: nothing acked
    assert sum(h.retries.values()) >= 10
    broken = False
    await pipe.drain(timeout=30)
    await pipe.close()
    assert [o for p, o in acks.order if p == 0] == [0, 1]
    out = [Optimized.model_validate_json(v).dispatch_id for _, v in producer.acked("out")]
    assert out.index("d-0") < out.index("d-1")  # resent in order


async def test_a_large_day_does_not_hold_other_partitions() -> None:
    """While a pass on partition 0 is stuck (a large day), partition 1's days are published."""
    release = threading.Event()

    class Stuck:
        version = "stuck"

        def score(self, state: SearchState, candidates: Candidates) -> Any:
            release.wait(30)
            return GreedyPolicy().score(state, candidates)

    class FirstStuck:
        def __init__(self) -> None:
            self.calls = 0

        def policy(self) -> Any:
            self.calls += 1
            return Stuck() if self.calls == 1 else GreedyPolicy()

        def refresh(self) -> bool:
            return False

    producer = Producer()
    acks = Acks()
    pipe = Pipeline(handler(producer, FirstStuck()), batch_max=1)
    await pipe.submit(acks.item(codec.encode(day(0)), 0, 0))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while pipe.handler.provider.calls == 0 and loop.time() < deadline:  # type: ignore[attr-defined]
        await asyncio.sleep(0.005)  # partition 0's pass has its (stuck) policy
    for i in range(1, 11):
        await pipe.submit(acks.item(codec.encode(day(i)), 1, i))
    deadline = loop.time() + 30
    while len([a for a in acks.order if a[0] == 1]) < 10 and loop.time() < deadline:
        await asyncio.sleep(0.005)
    try:
        assert [o for p, o in acks.order if p == 1] == list(range(1, 11))
        assert (0, 0) not in acks.order  # still stuck
    finally:
        release.set()
    await pipe.drain(timeout=60)
    await pipe.close()
    assert acks.order[-1] == (0, 0)


async def test_a_lane_over_high_water_pauses_its_partition() -> None:
    """Flow control: pause at high water, resume once drained to low water."""
    producer = Producer(delay=0.01)
    calls: list[tuple[str, Any]] = []
    pipe = Pipeline(
        handler(producer),
        batch_max=2,
        high_water=5,
        low_water=2,
        pause=lambda tp: calls.append(("pause", tp)),
        resume=lambda tp: calls.append(("resume", tp)),
    )
    acks = Acks()
    for i in range(8):
        await pipe.submit(acks.item(codec.encode(day(i)), 2, i))
    await pipe.drain(timeout=30)
    await pipe.close()
    # paused on every message at or over the mark (idempotent), resumed once
    assert [c for c in calls if c[0] == "resume"] == [("resume", 2)]
    first_resume = calls.index(("resume", 2))
    assert calls[:first_resume] == [("pause", 2)] * first_resume and first_resume >= 1


async def test_a_dead_letter_the_topic_refuses_is_rebuilt_smaller() -> None:
    """A refused dead letter is rebuilt with half the prefix until it fits; never dropped."""
    producer = Producer()
    producer.refuse(lambda t, k, v: t == "dlq" and len(v) > 100_000)
    h = handler(producer, max_record_bytes=8 * 1024 * 1024)
    raw = b"\xff" * 3_000_000
    handled = await h.handle(raw, b"k", Source("in", 0, 7))
    assert handled.kind == "dead_letter"
    [(key, value)] = producer.acked("dlq")
    dl = DeadLetter.model_validate_json(value)
    assert key == b"k" and dl.value_truncated and len(value) <= 100_000
    assert dl.value_size == len(raw) and dl.value_sha256 == hashlib.sha256(raw).hexdigest()
    assert raw.startswith(base64.b64decode(dl.value_b64))
    assert (dl.source_partition, dl.source_offset) == (0, 7)


async def test_an_optimized_the_topic_refuses_becomes_a_dead_letter() -> None:
    """An Optimized too large for its topic is replaced by a dead letter that says so."""
    producer = Producer()
    producer.refuse(lambda t, k, v: t == "out")
    h = handler(producer, max_record_bytes=1024 * 1024)
    d = day(3)
    handled = await h.handle(codec.encode(d), b"d-3", Source("in", 1, 0))
    assert handled.kind == "dead_letter"
    [(_, value)] = producer.acked("dlq")
    dl = DeadLetter.model_validate_json(value)
    assert dl.reason == "output_too_large" and not dl.value_truncated
    assert base64.b64decode(dl.value_b64) == codec.encode(d)
    assert h.counts["dead_letter"] == 1


@pytest.mark.parametrize("size", [1, 5_000_000, 12_000_000])
async def test_a_dead_letter_always_fits_under_the_limit(size: int) -> None:
    """Whatever the input's size, its dead letter fits the topic limit and describes it."""
    producer = Producer()
    limit = 8 * 1024 * 1024
    h = handler(producer, max_record_bytes=limit)
    raw = (b'{"event_id": "' + b"a" * size)[:size]
    await h.handle(raw, b"key", Source("in", 0, 1))
    [(_, value)] = producer.acked("dlq")
    assert len(value) < limit - 8 * 1024
    dl = DeadLetter.model_validate_json(value)
    assert dl.value_size == size and dl.value_sha256 == hashlib.sha256(raw).hexdigest()
    kept = base64.b64decode(dl.value_b64)
    assert (kept == raw) == (not dl.value_truncated) and raw.startswith(kept)


async def test_audits_keep_sequence_order_when_resent() -> None:
    """A failed audit is resent with every audit after it, so the log stays in order."""
    producer = Producer()
    first = True

    def once(t: str, k: bytes | None, v: bytes) -> bool:
        nonlocal first
        if t == "audit" and SwapAudit.model_validate_json(v).sequence == 0 and first:
            first = False
            return True
        return False

    producer.fail(once, times=1)
    h = handler(producer)
    d = day(11, 30, 4)
    await h.handle(codec.encode(d), b"d", Source("in", 0, 0))
    seqs = [SwapAudit.model_validate_json(v).sequence for _, v in producer.acked("audit")]
    n = len(set(seqs))
    assert n >= 2 and seqs[-n:] == list(range(n))


async def test_drop_queued_forgets_unprepared_messages_but_the_latest() -> None:
    """At a rebalance: queued messages are forgotten (never acked: redelivered), what was taken
    into a batch and the latest message still finish and are acked in order, and a paused
    partition under low water is resumed."""
    release = threading.Event()

    class Held:
        version = "held"

        def score(self, state: SearchState, candidates: Candidates) -> Any:
            release.wait(30)
            return GreedyPolicy().score(state, candidates)

    class Provider:
        def policy(self) -> Any:
            return Held()

        def refresh(self) -> bool:
            return False

    resumed: list[Any] = []
    pipe = Pipeline(
        handler(Producer(), Provider()),
        batch_max=1,
        high_water=4,
        low_water=1,
        pause=lambda tp: None,
        resume=resumed.append,
    )
    acks = Acks()
    for i in range(6):
        await pipe.submit(acks.item(codec.encode(day(i)), 0, i))
    await pipe.submit(acks.item(codec.encode(day(9)), 1, 0))  # the latest taken
    await asyncio.sleep(0.2)  # offset 0 of partition 0 is being prepared (held)
    assert pipe.drop_queued() == 5  # offsets 1-5 of partition 0
    assert resumed == [0] and pipe.pending() == 2
    release.set()
    await pipe.drain(timeout=60)
    await pipe.close()
    assert sorted(acks.order) == [(0, 0), (1, 0)] and pipe.dropped == 5
