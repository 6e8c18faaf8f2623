"""The dataset writer: every dispatch the service sees, appended to JSON-lines files for training.

Layout: `<dataset_dir>/<service_date>.jsonl`, one JSON object per line::

    {"kind": "heuristic_done", "dispatch_id": ..., "event_id": ..., "service_date": ...,
     "recorded_at": ..., "source": {"topic": ..., "partition": ..., "offset": ...},
     "event": {...the validated HeuristicDone...}}
    {"kind": "optimized", ... "event": {...the Optimized outcome...}}

Guarantees:

* **Idempotent by `dispatch_id`**: at most one `heuristic_done` and one `optimized` record per
  dispatch, across redeliveries and restarts (the set of written ids is rebuilt from the files at
  start). The first record seen wins; a later event with the same `dispatch_id` is skipped.
* **Durable before commit**: a batch is written, flushed and fsynced (files, and the directory
  when a file is new) before its offsets are committed. A crash between the two redelivers the
  batch, which idempotency absorbs. A torn last line (crash mid-write) is cut at start.
* One writer per directory (an exclusive `flock` on `<dataset_dir>/.lock`, which holds the
  writer's pid). A second worker on the same host does not fight over it: it waits as a standby
  (`run_dataset_writer_standby`), says so in one log line, and takes over when the lock frees.

* Every directory records every dispatch: the consumer group is named after the directory's
  own random id (`.dataset-id`, see `consumer_group`), so writers on two hosts, each with its
  own directory, do not split the partitions between them.

Input that fails validation is skipped here (the optimizer agent dead-letters it). The consumer is
a plain aiokafka consumer in its own group with manual commits: simpler and more honest than
Faust for "durable before commit".
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Literal

import structlog

from optimizer.adapter import event_keys
from schemas import HeuristicDone, Limits, Optimized
from streams import codec
from streams.reader import topic_kinds
from streams.settings import Settings
from streams.topics import MAX_MESSAGE_BYTES, client_options, consumer_group_options

log = structlog.get_logger("dispatch_rl.dataset")

RecordKind = Literal["heuristic_done", "optimized"]
SUFFIX = ".jsonl"
HEARTBEAT = ".heartbeat"
"""Touched by the writer loop at least every few seconds (container health checks read it)."""
HEARTBEAT_SECONDS = 5.0


class DatasetLockedError(RuntimeError):
    """Another dataset writer holds the directory; `pid` is its process id when known."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"{directory} is held by another dataset writer ({who})")
        self.directory = directory
        self.pid = pid


LOCK_FILE = ".lock"
ID_FILE = ".dataset-id"


def lock_holder(directory: Path) -> int | None:
    """The pid recorded by the dataset writer that holds (or last held) `directory`."""
    try:
        text = (Path(directory) / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class DatasetWriter:
    """Appends records to per-date files; knows which `(kind, dispatch_id)` are already there."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.written: set[tuple[str, str]] = set()
        self._files: dict[str, IO[bytes]] = {}
        self._dirty: set[str] = set()
        self._new_files = False
        self._lock: IO[bytes] | None = None
        self.dataset_id = ""
        """The directory's random id (`.dataset-id`, read or made by `open`)."""

    def open(self) -> DatasetWriter:
        """Lock the directory, repair torn tails, rebuild the index of written records."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # "r+b" after touching: opening must not truncate the pid of the writer holding it.
        (self.directory / LOCK_FILE).touch()
        lock = (self.directory / LOCK_FILE).open("r+b")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise DatasetLockedError(self.directory, lock_holder(self.directory)) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n".encode())
        lock.flush()
        self._lock = lock
        self.dataset_id = self._own_id()
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            _cut_torn_tail(path)
            for rec in _read_lines(path):
                self.written.add((str(rec.get("kind")), str(rec.get("dispatch_id"))))
        log.info("dataset_opened", directory=str(self.directory), records=len(self.written))
        return self

    def _own_id(self) -> str:
        """The directory's random id, made once (under the lock) and kept in `.dataset-id`."""
        if found := read_dataset_id(self.directory):
            return found
        path = self.directory / ID_FILE
        made = uuid.uuid4().hex
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            f.write(made + "\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        return made

    def close(self) -> None:
        self.sync()
        for f in self._files.values():
            f.close()
        self._files.clear()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def __enter__(self) -> DatasetWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self,
        kind: RecordKind,
        event: HeuristicDone | Optimized,
        source: dict[str, Any] | None = None,
    ) -> bool:
        """Append `event` unless a record of this kind for its dispatch exists; True if written.

        Not durable until `sync()`.
        """
        keys = event_keys(event)
        ident = (kind, keys.dispatch_id)
        if ident in self.written:
            return False
        record = {
            "kind": kind,
            "dispatch_id": keys.dispatch_id,
            "event_id": keys.event_id,
            "service_date": event.service_date.isoformat(),
            "recorded_at": datetime.now(UTC).isoformat(),
            "source": source,
            "event": event.model_dump(mode="json"),
        }
        line = json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        self._file(event.service_date).write(line)
        self._dirty.add(event.service_date.isoformat())
        self.written.add(ident)
        return True

    def sync(self) -> None:
        """Flush and fsync every file written since the last sync (and the directory if new)."""
        for name in sorted(self._dirty):
            f = self._files[name]
            f.flush()
            os.fsync(f.fileno())
        self._dirty.clear()
        if self._new_files:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._new_files = False

    def _file(self, day: date) -> IO[bytes]:
        name = day.isoformat()
        f = self._files.get(name)
        if f is None:
            path = self.directory / f"{name}{SUFFIX}"
            self._new_files |= not path.exists()
            f = self._files[name] = path.open("ab")
        return f


def _cut_torn_tail(path: Path) -> None:
    """Truncate a file to its last complete line (a crash may have left half a record)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        log.warning("dataset_torn_tail_cut", file=str(path), dropped_bytes=len(data) - keep)
        with path.open("r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                log.warning("dataset_bad_line", file=str(path), line=n)
                continue
            if isinstance(rec, dict):
                yield rec


# ------------------------------------------------------------------ the consumer


@dataclass
class WriterCounters:
    """What the writer loop did so far (for logs and tests)."""

    batches: int = 0
    written: int = 0
    duplicates: int = 0
    invalid: int = 0
    commits: int = 0


def read_dataset_id(directory: Path) -> str | None:
    """The id a dataset writer gave `directory` (None: none has opened it yet)."""
    with contextlib.suppress(OSError):
        if len(found := (Path(directory) / ID_FILE).read_text().strip()) == 32:
            return found
    return None


def consumer_group(settings: Settings, dataset_id: str) -> str:
    """The dataset writer's group: `DISPATCH_RL_DATASET_GROUP` as given when set, else
    `dispatch-rl-dataset-<dataset id>` (`Settings.sink_group`): each directory records every
    dispatch, whichever host it is on."""
    return settings.sink_group("dataset_group", lambda: dataset_id)


async def run_dataset_writer(
    settings: Settings,
    stop: asyncio.Event,
    *,
    ready: asyncio.Event | None = None,
    counters: WriterCounters | None = None,
    writer: DatasetWriter | None = None,
) -> WriterCounters:
    """Consume input and outcomes into `settings.dataset_dir` until `stop` is set.

    Per batch: validate, append new records, flush+fsync, then commit the batch's offsets.
    `ready` is set once the consumer has started. `writer`: an already opened (locked)
    writer to use; by default one is opened here (`DatasetLockedError` if another holds it).
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import CommitFailedError, KafkaError

    counters = counters if counters is not None else WriterCounters()
    limits = settings.limits()
    writer = writer if writer is not None else DatasetWriter(settings.dataset_dir).open()
    group = consumer_group(settings, writer.dataset_id)
    consumer = AIOKafkaConsumer(
        settings.topic_input,
        settings.topic_optimized,
        group_id=group,
        client_id=f"{group}-writer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
        **client_options(settings),
        **consumer_group_options(settings),
    )
    try:
        await consumer.start()
        if ready is not None:
            ready.set()
        log.info(
            "dataset_writer_started",
            group=group,
            directory=str(settings.dataset_dir),
        )
        beat = 0.0
        while not stop.is_set():
            if time.monotonic() - beat > HEARTBEAT_SECONDS:
                (settings.dataset_dir / HEARTBEAT).touch()
                beat = time.monotonic()
            batches = await consumer.getmany(timeout_ms=300, max_records=500)
            if not batches:
                continue
            offsets = {}
            for tp, records in batches.items():
                for r in records:
                    _consume_one(writer, settings, limits, r, counters)
                offsets[tp] = records[-1].offset + 1
            writer.sync()  # durable first ...
            try:
                await consumer.commit(offsets)  # ... then committed
                counters.commits += 1
            except (CommitFailedError, KafkaError) as exc:
                # A rebalance took the partitions: the next owner re-reads the batch, and
                # idempotency by dispatch_id absorbs it.
                log.warning("dataset_commit_failed", error=repr(exc))
            counters.batches += 1
    finally:
        try:
            await consumer.stop()
        finally:
            writer.close()
        log.info(
            "dataset_writer_stopped",
            written=counters.written,
            duplicates=counters.duplicates,
            invalid=counters.invalid,
        )
    return counters


async def run_dataset_writer_standby(
    settings: Settings,
    stop: asyncio.Event,
    *,
    counters: WriterCounters | None = None,
    poll_seconds: float = 2.0,
) -> WriterCounters:
    """Wait until the dataset directory's lock is free (or `stop`), then run the writer.

    For a second worker on the same host: the writer that holds the lock keeps writing; this
    one takes over within `poll_seconds` when that process stops or dies (the kernel drops a
    dead process's flock). Its consumer group is the same, so it resumes at the committed
    offsets, and idempotency by dispatch_id absorbs any batch the other wrote but had not
    committed.
    """
    counters = counters if counters is not None else WriterCounters()
    while not stop.is_set():
        try:
            writer = DatasetWriter(settings.dataset_dir).open()
        except DatasetLockedError:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_seconds)
            continue
        log.info(
            "dataset_writer_taking_over",
            message=f"dataset writer lock is free; pid {os.getpid()} now runs the dataset writer",
        )
        return await run_dataset_writer(settings, stop, counters=counters, writer=writer)
    return counters


def _consume_one(
    writer: DatasetWriter,
    settings: Settings,
    limits: Limits,
    record: Any,
    counters: WriterCounters,
) -> None:
    source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    kind = topic_kinds(settings)[record.topic]
    decoded = codec.decode_kind(kind, record.value, limits)
    if isinstance(decoded, list):
        counters.invalid += 1
        log.info("dataset_skip_invalid", **source)
        return
    assert kind != "swap_audit" and isinstance(decoded, HeuristicDone | Optimized)
    if writer.add(kind, decoded, source):
        counters.written += 1
    else:
        counters.duplicates += 1


# ------------------------------------------------------------------ reading and stats


def iter_records(directory: Path) -> Iterator[dict[str, Any]]:
    """Every record of the dataset, file by file (dates ascending), in file order."""
    for path in sorted(Path(directory).glob(f"*{SUFFIX}")):
        yield from _read_lines(path)


def load_days(directory: Path) -> Iterator[HeuristicDone]:
    """The recorded `HeuristicDone` events (for training and evaluation)."""
    for rec in iter_records(directory):
        if rec.get("kind") == "heuristic_done":
            yield HeuristicDone.model_validate(rec["event"])


@dataclass
class DatasetStats:
    """A summary of the dataset directory."""

    files: int = 0
    dispatches: int = 0
    outcomes: int = 0
    matched: int = 0
    duplicate_records: int = 0
    bookings: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    gap_before: list[int] = field(default_factory=list)
    gap_after: list[int] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        def mean(v: list[int]) -> str:
            return f"{sum(v) / len(v):.2f}" if v else "-"

        span = f"{self.dates[0]} .. {self.dates[-1]}" if self.dates else "-"
        status = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())) or "-"
        return [
            f"files: {self.files} (service dates {span})",
            f"dispatches (heuristic_done): {self.dispatches}, bookings: {self.bookings}",
            f"outcomes (optimized): {self.outcomes}, matched to a dispatch: {self.matched}",
            f"statuses: {status}",
            f"mean gap before -> after: {mean(self.gap_before)} -> {mean(self.gap_after)}",
            f"duplicate records: {self.duplicate_records}",
        ]


def dataset_stats(directory: Path) -> DatasetStats:
    """Count dispatches, outcomes, statuses and gaps of the dataset in `directory`."""
    stats = DatasetStats()
    paths = sorted(Path(directory).glob(f"*{SUFFIX}"))
    stats.files = len(paths)
    stats.dates = [p.name.removesuffix(SUFFIX) for p in paths]
    seen: set[tuple[str, str]] = set()
    inputs: set[str] = set()
    outputs: set[str] = set()
    for rec in iter_records(directory):
        ident = (str(rec.get("kind")), str(rec.get("dispatch_id")))
        if ident in seen:
            stats.duplicate_records += 1
            continue
        seen.add(ident)
        event = rec.get("event") or {}
        if ident[0] == "heuristic_done":
            stats.dispatches += 1
            inputs.add(ident[1])
            stats.bookings += len(event.get("bookings", ()))
        elif ident[0] == "optimized":
            stats.outcomes += 1
            outputs.add(ident[1])
            stats.statuses[str(event.get("status"))] += 1
            m = event.get("metrics") or {}
            if "before" in m and "after" in m:
                stats.gap_before.append(int(m["before"]["gap"]))
                stats.gap_after.append(int(m["after"]["gap"]))
    stats.matched = len(inputs & outputs)
    return stats
