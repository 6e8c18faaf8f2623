"""streams/publishing.py alone: a `Publisher` with an injected dead-letter builder."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

from schemas import ErrorDetail
from streams.agents import Handled, Prepared, Record, Source
from streams.publishing import Publisher


def _prepared(key: bytes, final_topic: str = "out") -> Prepared:
    return Prepared(
        Source("in", 0, 5),
        key,
        b"raw-input",
        [Record("audit", key, b"a1"), Record("audit", key, b"a2")],
        Record(final_topic, key, b"x" * 100),
        Handled("optimized", key, "optimized", "evt-1", 2),
    )


async def test_a_refused_optimized_is_rebuilt_by_the_injected_builder() -> None:
    """The builder the publisher was given makes the dead letter that replaces a refused
    `Optimized` (budget: the topics' limit), and audits still go first."""
    sent: list[tuple[str, bytes]] = []
    built: list[tuple[bytes | None, list[ErrorDetail], int | None]] = []

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        if topic == "out":
            raise MessageSizeTooLargeError("too large")
        sent.append((topic, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def dead_letter(
        raw: bytes | None,
        key: bytes | None,
        errors: list[ErrorDetail],
        source: Source,
        budget: int | None = None,
    ) -> Prepared:
        built.append((raw, errors, budget))
        return Prepared(
            source,
            key,
            raw,
            [],
            Record("dlq", key, b"dl"),
            Handled("dead_letter", key, "dead_letter", "evt-dl"),
        )

    publisher = Publisher(send, dead_letter, max_record_bytes=4096)
    p = _prepared(b"k")
    await publisher.publish([p])
    assert sent == [("audit", b"a1"), ("audit", b"a2"), ("dlq", b"dl")]
    [(raw, errors, budget)] = built
    assert raw == b"raw-input" and budget == 4096
    assert [e.type for e in errors] == ["output_too_large"]
    assert p.handled.kind == "dead_letter" and publisher.counts == {"dead_letter": 1}
