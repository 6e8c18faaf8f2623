"""structlog set-up, and rate limiting so that an outage cannot flood the log.

`configure_logging` routes structlog and stdlib logging (Faust, aiokafka) to stderr in one
format and installs `RateLimitFilter` on the stdlib handler: during a broker outage aiokafka
logs the same connection error thousands of times a second; the filter lets the first line of
each distinct error through, then at most one line per `interval` seconds carrying
`repeated=N` (how many identical lines were held back since the last one printed).
`RateLimiter` is the same bookkeeping for code that logs through structlog (the agent's send
retries use it).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

DEFAULT_INTERVAL = 10.0
"""Seconds between two lines of the same error."""

_NUMBERS = re.compile(r"\d+")  # "attempt 3", ports, ids: the same error with other numbers


@dataclass(slots=True)
class _Seen:
    last: float
    held: int = 0


class RateLimiter:
    """Decides, per distinct key, whether a line may be written now.

    `allow(key)` returns None when the line must be held back, else how many lines with that
    key were held back since the last one allowed (0 for the first). Thread-safe: aiokafka's
    consumer runs in its own thread under Faust. Keys idle for more than 10 intervals are
    forgotten, so the table stays small.
    """

    def __init__(
        self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def allow(self, key: str) -> int | None:
        now = self._clock()
        with self._lock:
            if now - self._last_sweep > 10 * self.interval:
                self._seen = {
                    k: s for k, s in self._seen.items() if now - s.last <= 10 * self.interval
                }
                self._last_sweep = now
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = _Seen(now)
                return 0
            if now - seen.last < self.interval:
                seen.held += 1
                return None
            held, seen.held, seen.last = seen.held, 0, now
            return held


class RateLimitFilter(logging.Filter):
    """A stdlib logging filter: one line per distinct WARNING-or-worse record per interval.

    Records are the same when they come from the same logger at the same level with the same
    message once digits are blanked out (so "connect attempt 3 to 127.0.0.1:9092" and
    "attempt 4" count as one error). A line let through after others were held back gets
    `repeated=N` appended. INFO and DEBUG records pass untouched.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL, min_level: int = logging.WARNING):
        super().__init__()
        self.limiter = RateLimiter(interval)
        self.min_level = min_level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is still one distinct error
            text = str(record.msg)
        exc = record.exc_info[1] if record.exc_info else None
        key = "|".join(
            (record.name, record.levelname, _NUMBERS.sub("#", text[:300]), type(exc).__name__)
        )
        held = self.limiter.allow(key)
        if held is None:
            return False
        if held:
            record.msg = f"{text} (repeated={held} in the last {self.limiter.interval:g}s)"
            record.args = None
        return True


class RetriedAsWarning(logging.Filter):
    """aiokafka logs "Group Coordinator Request failed" at ERROR even when the error is
    retriable and it retries: on every first start against a fresh broker (the group
    coordinator is elected while the offsets topic is created) a healthy worker printed an
    error. A retriable one becomes a WARNING; a fatal one stays an ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.ERROR
            and record.name == "aiokafka.consumer.group_coordinator"
            and str(record.msg).startswith("Group Coordinator Request failed")
            and isinstance(record.args, tuple)
            and record.args
            and getattr(record.args[0], "retriable", False)
        ):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"{record.msg} (retriable: retrying)"
        return True


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "INFO",
    *,
    interval: float = DEFAULT_INTERVAL,
) -> None:
    """Route structlog (and stdlib logging, e.g. Faust's) to stderr in one format.

    Stdlib WARNING-or-worse records are rate limited (`RateLimitFilter`, `interval` seconds).
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # rich tracebacks print every local (numpy arrays too): slow and noisy
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        # Resolve sys.stderr per logger, not once: tests and daemons may swap it. WriteLogger,
        # not PrintLogger: print() writes the record and its newline as two write()s on the
        # unbuffered stderr, so a prepare process logging to the same stderr as its worker
        # glued records together ('...}{"event"...'); one write() per record keeps lines whole.
        logger_factory=lambda *_: structlog.WriteLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer, foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()]
        )
    )
    # On the handler, not on loggers: a filter on a logger misses its children's records.
    handler.addFilter(RetriedAsWarning())
    handler.addFilter(RateLimitFilter(interval))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
