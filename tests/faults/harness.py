"""Helpers of the fault-injection suite (and of `bench/faults.py`): real worker subprocesses,
a producer that records where each input landed, and readers of the output topics.

Everything here works on behaviour visible from outside the worker: its exit, its log lines
(JSON, one per line) and the topics' contents. Nothing reaches into the worker's internals.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.local_kafka.process import parent_death_signal
from streams.settings import Settings
from streams.topics import MAX_MESSAGE_BYTES, client_options

ROOT = Path(__file__).resolve().parents[2]

# The variables a worker subprocess takes from a `Settings` object (the rest stay default).
_ENV_FIELDS = (
    "bootstrap_servers",
    "app_id",
    "dataset_group",
    "topic_input",
    "topic_optimized",
    "topic_audit",
    "topic_dead_letter",
    "dataset_dir",
    "state_dir",
    "model_dir",
    "topic_partitions",
    "data_dir",
    "session_timeout_seconds",
    "heartbeat_interval_seconds",
)


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `dispatch-rl` subprocess using `settings`, JSON logs, web off
    (unless `extra` turns it on), and this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_RL_")}
    for name in _ENV_FIELDS:
        if name in type(settings).model_fields:
            env[f"DISPATCH_RL_{name.upper()}"] = str(getattr(settings, name))
    env.update(
        DISPATCH_RL_WEB_ENABLED="false",
        DISPATCH_RL_LOG_FORMAT="json",
        DISPATCH_RL_MODEL_POLL_SECONDS="3600",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class WorkerProcess:
    """`python -m streams.cli ARGS` (default `run`) as a subprocess, its stderr in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.env = env
        self.log_path = log_path
        self.args = args or ("run",)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", *self.args],
                env=self.env,
                cwd=ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # a killed test session must not leave workers behind
                preexec_fn=parent_death_signal(),
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines so far (other lines, if any, are skipped)."""
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def count(self, event: str) -> int:
        return sum(e.get("event") == event for e in self.events())

    async def wait_for(
        self,
        event: str,
        *,
        timeout: float = 90.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first log event named `event` (matching `where`); fails if the process exits or
        `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events():
                if e.get("event") == event and (where is None or where(e)):
                    return e
            if not self.alive():
                raise AssertionError(
                    f"worker exited ({self.proc.returncode if self.proc else None}) before "
                    f"{event!r}; log tail:\n{self.text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {event!r} within {timeout} s; log tail:\n{self.text()[-3000:]}"
                )
            await asyncio.sleep(0.2)

    def kill9(self) -> float:
        """SIGKILL the worker (its whole session); returns the wall time of the kill."""
        assert self.proc is not None
        at = time.time()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        return at

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; the exit code (SIGKILL after `timeout`)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        return self.proc.returncode

    def tracebacks(self) -> int:
        """How many Python tracebacks the log holds (a crash, or an exception logged raw)."""
        return self.text().count("Traceback (most recent call last)")


# ------------------------------------------------------------------ producing


@dataclass(frozen=True, slots=True)
class Produced:
    """One input as the broker stored it."""

    key: bytes | None
    partition: int
    offset: int
    at: float
    """Wall time (Unix seconds) when it was handed to the producer."""


async def produce(
    settings: Settings,
    payloads: Sequence[tuple[bytes | None, bytes]],
    *,
    topic: str | None = None,
    rate: float | None = None,
) -> list[Produced | BaseException]:
    """Send `(key, value)` pairs (acks=all); where each landed, or the exception that refused it
    (e.g. a value over the topic's size limit). `rate`: at most that many per second."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        acks="all",
        max_request_size=MAX_MESSAGE_BYTES + 1024 * 1024,  # let the broker judge the limit
        linger_ms=5,
        **client_options(settings),
    )
    await producer.start()
    try:
        futures: list[asyncio.Future[Any] | BaseException] = []
        times: list[float] = []
        start = time.monotonic()
        for i, (key, value) in enumerate(payloads):
            if rate is not None:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            times.append(time.time())
            try:
                futures.append(await producer.send(topic or settings.topic_input, value, key=key))
            except Exception as exc:  # refused by the client before sending
                futures.append(exc)
        out: list[Produced | BaseException] = []
        for (key, _), fut, at in zip(payloads, futures, times, strict=True):
            if isinstance(fut, BaseException):
                out.append(fut)
                continue
            try:
                meta = await fut
            except Exception as exc:  # refused by the broker
                out.append(exc)
                continue
            out.append(Produced(key, meta.partition, meta.offset, at))
        return out
    finally:
        await producer.stop()


# ------------------------------------------------------------------ reading


class TopicLog:
    """Every record of one topic from the beginning, read incrementally by one group-less
    consumer (`async with TopicLog(settings, topic) as log`); `docs` are the JSON values."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.records: list[Any] = []
        self.docs: list[dict[str, Any]] = []
        self._consumer: Any = None

    async def __aenter__(self) -> TopicLog:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            self.topic,
            enable_auto_commit=False,
            max_partition_fetch_bytes=2 * MAX_MESSAGE_BYTES,
            fetch_max_bytes=4 * MAX_MESSAGE_BYTES,
            **client_options(self.settings),
        )
        await consumer.start()
        parts = sorted(consumer.partitions_for_topic(self.topic) or ())
        consumer.unsubscribe()
        self._tps = [TopicPartition(self.topic, p) for p in parts]
        consumer.assign(self._tps)
        await consumer.seek_to_beginning(*self._tps)
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> int:
        """Fetch what arrived; how many new records."""
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        n = 0
        for records in batches.values():
            for r in records:
                self.records.append(r)
                try:
                    doc = json.loads(r.value)
                except ValueError:
                    doc = {}
                self.docs.append(doc if isinstance(doc, dict) else {})
                n += 1
        return n

    def distinct(self, name: str = "dispatch_id") -> set[Any]:
        return {d.get(name) for d in self.docs}

    async def until(
        self, done: Callable[[TopicLog], bool], timeout: float, *, idle: float | None = None
    ) -> bool:
        """Poll until `done(self)`; False when `timeout` passes first, or when nothing new
        arrived for `idle` seconds (a stuck pipeline fails fast instead of at the timeout)."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while not done(self):
            now = time.monotonic()
            if now > deadline or (idle is not None and now - last > idle):
                return False
            if await self.poll():
                last = time.monotonic()
        return True

    async def catch_up(self, timeout: float = 60.0) -> None:
        """Read up to the topic's end offsets as they are now."""
        ends = await self._consumer.end_offsets(self._tps)
        deadline = time.monotonic() + timeout
        while True:
            positions = [await self._consumer.position(tp) for tp in self._tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, self._tps, strict=True)):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic}: could not read to its end in {timeout} s")
            await self.poll()


def has_distinct(n: int, name: str = "dispatch_id") -> Callable[[TopicLog], bool]:
    """`done` for `TopicLog.until`: at least `n` distinct values of a JSON field."""
    return lambda log: len(log.distinct(name)) >= n


async def read_all(
    settings: Settings,
    topic: str,
    *,
    until: Callable[[list[Any]], bool] = lambda _: True,
    timeout: float = 120.0,
    linger: float = 0.0,
) -> list[Any]:
    """Records of `topic` from the beginning until `until(records)` holds (then `linger`
    seconds more) or `timeout`."""
    from tests.streams.conftest import read_topic

    return await read_topic(settings, topic, done=until, timeout=timeout, linger=linger)


def distinct(field_name: str, n: int) -> Callable[[list[Any]], bool]:
    """`until` for `read_all`: at least `n` distinct values of a JSON field."""

    def done(records: list[Any]) -> bool:
        return len({json.loads(r.value).get(field_name) for r in records}) >= n

    return done


@dataclass
class OutputCheck:
    """Optimized records against the inputs: lost, duplicated, and whether duplicates agree."""

    expected: int
    records: int
    distinct_dispatches: int
    lost: list[str]
    duplicates: int
    inconsistent: list[str] = field(default_factory=list)
    """Dispatches whose repeated Optimized differ in event id or assignments."""
    extra: int = 0
    """Optimized for dispatches we never sent (should be 0)."""


def check_optimized(records: Iterable[Any], dispatch_ids: Iterable[str]) -> OutputCheck:
    """Group Optimized records by dispatch: every expected one present, every repeat equal to
    the first in event id, source event id and assignments."""
    wanted = set(dispatch_ids)
    first: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    inconsistent: set[str] = set()
    n = 0
    for r in records:
        n += 1
        doc = json.loads(r.value)
        d = doc["dispatch_id"]
        counts[d] += 1
        key = (doc["event_id"], doc.get("source_event_id"), json.dumps(doc.get("assignments")))
        if d in first:
            if first[d]["key"] != key:
                inconsistent.add(d)
        else:
            first[d] = {"key": key}
    return OutputCheck(
        expected=len(wanted),
        records=n,
        distinct_dispatches=len(wanted & counts.keys()),
        lost=sorted(wanted - counts.keys()),
        duplicates=sum(c - 1 for c in counts.values()),
        inconsistent=sorted(inconsistent),
        extra=len(counts.keys() - wanted),
    )


def dataset_counts(directory: Path) -> Counter[tuple[str, str]]:
    """Records per (kind, dispatch_id) in the dataset directory."""
    from streams.dataset import iter_records

    return Counter((str(r.get("kind")), str(r.get("dispatch_id"))) for r in iter_records(directory))


def by_partition(produced: Iterable[Produced]) -> dict[int, list[Produced]]:
    out: dict[int, list[Produced]] = defaultdict(list)
    for p in produced:
        out[p.partition].append(p)
    return dict(out)
