"""Rate-limited, deduplicated error logs (`streams.logs`)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from streams.logs import RateLimiter, RateLimitFilter, configure_logging


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limiter_allows_one_line_per_key_per_interval_and_counts_the_rest() -> None:
    """First line passes, repeats within the interval are held, the next line says how many."""
    clock = Clock()
    limiter = RateLimiter(10.0, clock)
    assert limiter.allow("a") == 0
    assert [limiter.allow("a") for _ in range(5)] == [None] * 5
    assert limiter.allow("b") == 0  # another error is not held back by the first
    clock.now = 10.5
    assert limiter.allow("a") == 5
    assert limiter.allow("a") is None
    clock.now = 21.0
    assert limiter.allow("a") == 1


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """stderr captured while `configure_logging` routes stdlib logging to it."""
    buf = io.StringIO()
    monkeypatch.setattr("sys.stderr", buf)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("json", "INFO", interval=3600)
    try:
        yield buf
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_an_outage_flood_becomes_one_line_per_distinct_error(stderr: io.StringIO) -> None:
    """10,000 connection errors (differing only in numbers) and 10,000 of another kind: two
    lines; INFO lines are never held back."""
    kafka = logging.getLogger("aiokafka.conn")
    for i in range(10_000):
        kafka.error(
            "Unable connect to node with id %d: [Errno 111] Connect call failed %s",
            1,
            (
                "127.0.0.1",
                40000 + i,
            ),
        )
        logging.getLogger("aiokafka.consumer").warning("Got error %d fetching", i)
    for i in range(3):
        logging.getLogger("faust").info("started %d", i)
    lines = stderr.getvalue().splitlines()
    assert len([ln for ln in lines if "Unable connect" in ln]) == 1
    assert len([ln for ln in lines if "fetching" in ln]) == 1
    assert len([ln for ln in lines if "started" in ln]) == 3


def test_the_next_line_after_the_interval_carries_the_count() -> None:
    """After the interval, one line with repeated=N."""
    f = RateLimitFilter(interval=10.0)
    clock = Clock()
    f.limiter = RateLimiter(10.0, clock)

    def record(i: int) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "lost %d", (i,), None)

    assert f.filter(record(1))
    assert not any(f.filter(record(i)) for i in range(2, 100))
    clock.now = 11.0
    r = record(100)
    assert f.filter(r)
    assert r.getMessage() == "lost 100 (repeated=98 in the last 10s)"


def test_a_retried_coordinator_lookup_is_a_warning_and_a_fatal_one_an_error(
    stderr: io.StringIO,
) -> None:
    """What aiokafka logs at ERROR on every first start against a fresh broker (retriable,
    and retried) is written as a warning; a non-retriable failure stays an error."""
    import json

    from aiokafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError

    log = logging.getLogger("aiokafka.consumer.group_coordinator")
    log.error("Group Coordinator Request failed: %s", CoordinatorNotAvailableError())
    log.error("Group Coordinator Request failed: %s", GroupAuthorizationFailedError())
    docs = [json.loads(line) for line in stderr.getvalue().splitlines()]
    assert [(d["level"], "retrying" in d["event"]) for d in docs] == [
        ("warning", True),
        ("error", False),
    ]
