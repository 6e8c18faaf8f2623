"""Nothing is lost at any size, against a real broker: inputs 1 KB below the input topic's
limit, at it, and above it, and a dead-letter topic that refuses writes for a while.

What the broker does with each size (checked here, not assumed): a record up to the topic's
`max.message.bytes` (counted on the whole record batch) is accepted; one byte more is refused
(MESSAGE_TOO_LARGE) to a normal, uncompressed producer, so it never reaches the worker. The
limit applies to the batch as stored, i.e. after compression: a gzip producer can put a value
far larger than the limit on the topic, and the worker must cope with that too.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from optimizer.policy import GreedyPolicy
from optimizer.serving import StaticPolicyProvider
from schemas import DeadLetter, HeuristicDone, Optimized
from streams.settings import Settings
from streams.topics import MAX_MESSAGE_BYTES, client_options, ensure_topics, topic_specs
from streams.worker import running_worker
from tests.streams.conftest import read_topic, unique_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

LIMIT = MAX_MESSAGE_BYTES


def _batch_size(key: bytes, value_size: int) -> int:
    """Bytes of the one-record batch a producer sends (what the broker checks)."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=4 * LIMIT,
    )
    builder.append(0, timestamp=None, key=key, value=b"x" * value_size, headers=[])
    return len(builder.build())


def _at_limit_value_size(key: bytes) -> int:
    """The value size whose one-record batch is exactly `LIMIT` bytes."""
    size = LIMIT - (_batch_size(key, 0) - 0)
    while _batch_size(key, size) > LIMIT:  # value-length varint grows with the value
        size -= 1
    assert _batch_size(key, size) == LIMIT
    return size


def _padded_day(day: HeuristicDone, size: int) -> bytes:
    """A valid day padded with JSON whitespace to exactly `size` bytes."""
    raw = day.model_dump_json().encode()
    return raw + b" " * (size - len(raw))


def _garbage(size: int, seed: int) -> bytes:
    """Invalid JSON of exactly `size` bytes (an unterminated string)."""
    head = f'{{"event_id": "garbage-{seed}-'.encode()
    return head + b"g" * (size - len(head))


async def _producer(settings: Settings, **kw: Any) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        acks="all", max_request_size=64 * 1024 * 1024, **kw, **client_options(settings)
    )
    await producer.start()
    return producer


def _check_dead_letter(value: bytes, raw: bytes, partition: int, offset: int) -> DeadLetter:
    assert len(value) <= LIMIT
    dl = DeadLetter.model_validate_json(value)
    assert (dl.source_partition, dl.source_offset) == (partition, offset)
    assert dl.value_size == len(raw) and dl.value_sha256 == hashlib.sha256(raw).hexdigest()
    kept = base64.b64decode(dl.value_b64)
    assert raw.startswith(kept) and (kept == raw) == (not dl.value_truncated)
    return dl


async def test_inputs_below_at_and_above_the_limit_are_all_answered(
    kafka_bootstrap: str, tmp_path: Path, seed_day: HeuristicDone
) -> None:
    """Every input the broker accepts, of any size, gets an Optimized or a fitting dead letter."""
    settings = unique_settings(kafka_bootstrap, tmp_path)
    await ensure_topics(settings)
    key = b"k" * 16
    at_limit = _at_limit_value_size(key)
    below = LIMIT - 1024
    plain = await _producer(settings)
    try:
        # The broker's side: one byte over the limit is refused to an uncompressed producer.
        with pytest.raises(KafkaError) as refused:
            await (await plain.send(settings.topic_input, b"x" * (at_limit + 1), key=key))
        assert "TooLarge" in type(refused.value).__name__, refused.value
        sent: list[tuple[str, bytes, Any]] = []
        cases = [
            ("valid-below", _padded_day(seed_day, below)),
            ("garbage-below", _garbage(below, 1)),
            ("valid-at", _padded_day(seed_day.model_copy(update={"event_id": "evt-at"}), at_limit)),
            ("garbage-at", _garbage(at_limit, 2)),
            ("garbage-small", _garbage(100_000, 4)),
        ]
        for name, raw in cases:
            meta = await (await plain.send(settings.topic_input, raw, key=key, partition=0))
            sent.append((name, raw, meta))
    finally:
        await plain.stop()
    # Above the limit: only a compressing producer gets it onto the topic.
    gzip = await _producer(settings, compression_type="gzip")
    try:
        for name, raw in [("garbage-above", _garbage(3 * LIMIT, 3))]:
            meta = await (await gzip.send(settings.topic_input, raw, key=key, partition=0))
            sent.append((name, raw, meta))
    finally:
        await gzip.stop()

    provider = StaticPolicyProvider(GreedyPolicy())
    async with running_worker(settings, dataset=False, provider=provider) as worker:
        dead = await read_topic(
            settings, settings.topic_dead_letter, done=lambda rs: len(rs) >= 4, timeout=120
        )
        optimized = await read_topic(
            settings, settings.topic_optimized, done=lambda rs: len(rs) >= 2, timeout=60
        )
        assert worker.failed() is None
    by_offset = {DeadLetter.model_validate_json(r.value).source_offset: r for r in dead}
    for name, raw, meta in sent:
        if name.startswith("garbage"):
            record = by_offset[meta.offset]
            dl = _check_dead_letter(record.value, raw, meta.partition, meta.offset)
            # base64 makes 4 bytes of 3: from about 6.3 MB on, only a prefix fits.
            assert dl.value_truncated == (name != "garbage-small"), name
    ids = sorted(Optimized.model_validate_json(r.value).source_event_id for r in optimized)
    assert ids == sorted(["evt-at", seed_day.event_id])


async def _set_config(settings: Settings, topic: str, configs: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()


async def _committed(settings: Settings, tp: TopicPartition) -> int:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
        return offsets[tp].offset if tp in offsets else -1
    finally:
        await admin.close()


async def _wait(pred: Callable[[], Any], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await pred():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_a_dead_letter_that_cannot_be_written_holds_its_partition(
    kafka_bootstrap: str, tmp_path: Path, seed_day: HeuristicDone
) -> None:
    """While the dead-letter topic refuses writes (here: a size limit below any dead letter),
    the bad input's offset is not committed and
    nothing after it in its partition is; other partitions go on; once writes work again the
    dead letter is written and the offsets move on."""
    settings = unique_settings(kafka_bootstrap, tmp_path)
    specs = topic_specs(settings)
    # Smaller than any dead letter, however much it is cut: every write fails until lifted.
    for s in specs:
        if s.name == settings.topic_dead_letter:
            s.configs["max.message.bytes"] = "200"
    await ensure_topics(settings, specs)
    tp0 = TopicPartition(settings.topic_input, 0)
    good = [
        seed_day.model_copy(update={"event_id": f"evt-{i}", "dispatch_id": f"d-{i}"})
        for i in range(3)
    ]
    provider = StaticPolicyProvider(GreedyPolicy())
    async with running_worker(settings, dataset=False, provider=provider) as worker:
        producer = await _producer(settings)
        try:
            await (await producer.send(settings.topic_input, b"not json", key=b"bad", partition=0))
            after_bad = good[0].model_dump_json().encode()
            await (await producer.send(settings.topic_input, after_bad, key=b"d-0", partition=0))
            for d in good[1:]:
                raw = d.model_dump_json().encode()
                await (await producer.send(settings.topic_input, raw, key=b"x", partition=1))
        finally:
            await producer.stop()
        # Partition 1 is answered while partition 0 is held by its dead letter.
        out = await read_topic(
            settings, settings.topic_optimized, done=lambda rs: len(rs) >= 2, timeout=60
        )
        assert {"d-1", "d-2"} <= {json.loads(r.value)["dispatch_id"] for r in out}
        await asyncio.sleep(3)  # several commit intervals
        assert await _committed(settings, tp0) <= 0
        assert worker.failed() is None
        await _set_config(settings, settings.topic_dead_letter, {"max.message.bytes": "1048576"})

        async def moved_on() -> bool:
            return await _committed(settings, tp0) == 2

        await _wait(moved_on, 90)
        dead = await read_topic(
            settings, settings.topic_dead_letter, done=lambda rs: len(rs) >= 1, timeout=30
        )
        out = await read_topic(
            settings, settings.topic_optimized, done=lambda rs: len(rs) >= 3, timeout=30
        )
    [dl] = [DeadLetter.model_validate_json(r.value) for r in dead]
    assert (dl.source_partition, dl.source_offset) == (0, 0)
    # Refused as too large, it was cut down to its description (the original stays at 0:0).
    assert dl.value_size == 8 and dl.value_sha256 == hashlib.sha256(b"not json").hexdigest()
    assert b"not json".startswith(base64.b64decode(dl.value_b64))
    assert {json.loads(r.value)["dispatch_id"] for r in out} == {"d-0", "d-1", "d-2"}


async def test_absurd_days_go_to_the_dead_letter_with_their_reason(
    kafka_bootstrap: str, tmp_path: Path, seed_day: HeuristicDone
) -> None:
    """Windows in years 0001 and 9999, a place on another continent and an empty day are
    dead-lettered by name; the sane day beside them is optimized."""
    from schemas import Location

    settings = unique_settings(kafka_bootstrap, tmp_path)
    b = seed_day.bookings[0]

    def variant(i: int, **changes: Any) -> HeuristicDone:
        return seed_day.model_copy(
            update={"event_id": f"evt-{i}", "dispatch_id": f"d-{i}", **changes}
        )

    def window_year(year: int) -> tuple[Any, ...]:
        moved = b.model_copy(
            update={
                "pickup_earliest": b.pickup_earliest.replace(year=year),
                "pickup_latest": b.pickup_latest.replace(year=year),
            }
        )
        return (moved, *seed_day.bookings[1:])

    far = b.model_copy(update={"dropoff": Location(lat=-33.9, lon=151.2)})
    days = {
        "window_out_of_range/1": variant(1, bookings=window_year(1)),
        "window_out_of_range/9999": variant(2, bookings=window_year(9999)),
        "coordinates_too_spread": variant(3, bookings=(far, *seed_day.bookings[1:])),
        "empty_day": variant(4, bookings=(), assignments=()),
        "ok": variant(5),
    }
    provider = StaticPolicyProvider(GreedyPolicy())
    async with running_worker(settings, dataset=False, provider=provider):
        producer = await _producer(settings)
        try:
            for d in days.values():
                raw = d.model_dump_json().encode()
                await (await producer.send(settings.topic_input, raw, key=d.dispatch_id.encode()))
        finally:
            await producer.stop()
        dead = await read_topic(
            settings, settings.topic_dead_letter, done=lambda rs: len(rs) >= 4, timeout=60
        )
        out = await read_topic(
            settings, settings.topic_optimized, done=lambda rs: len(rs) >= 1, timeout=60
        )
    reasons = sorted(DeadLetter.model_validate_json(r.value).reason for r in dead)
    assert reasons == sorted(k.split("/")[0] for k in days if k != "ok")
    assert [Optimized.model_validate_json(r.value).dispatch_id for r in out] == ["d-5"]
