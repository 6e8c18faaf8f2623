"""Running the service: broker resolution, topic creation, the worker, publishing, the demo.

* `broker_for(settings)`: the configured bootstrap, else the durable local broker recorded in
  `<data_dir>/kafka` (started if none runs, and stopped again on exit if we started it; its
  data is kept), or with `ephemeral=True` a fresh one in a temporary directory.
* `running_worker(settings, ...)`: an async context manager running the optimizer app and/or the
  dataset writer in this process (what `run`, `demo`, the end-to-end tests and the benchmark use).
* `run(settings, ...)`: the `dispatch-rl run` main loop, until SIGINT/SIGTERM.
* `publish_events(settings, payloads)`, `read_day_files(paths)`: `dispatch-rl publish`.
* `demo(settings, ...)`: run, publish the seed day and a few generated days, return the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from optimizer.serving import PolicyProvider
from schemas import HeuristicDone, Optimized
from streams import codec
from streams.dataset import (
    DatasetLockedError,
    DatasetWriter,
    WriterCounters,
    run_dataset_writer,
    run_dataset_writer_standby,
)
from streams.logs import configure_logging
from streams.metrics import AgentLag, default_metrics
from streams.reader import TopicReader
from streams.reader import end_offsets as reader_end_offsets
from streams.settings import Settings
from streams.store.notify import OptimizedNotifier
from streams.topics import MAX_MESSAGE_BYTES, client_options, ensure_topics

if TYPE_CHECKING:
    import faust

    from streams.audit_service import RunningStore
    from streams.web import RunningWeb

log = structlog.get_logger("dispatch_rl.worker")


# ------------------------------------------------------------------ broker


@contextlib.contextmanager
def broker_for(
    settings: Settings, *, start: bool = True, ephemeral: bool = False
) -> Iterator[Settings]:
    """`settings` with a bootstrap that answers.

    A configured `bootstrap_servers` is used as is. Otherwise the durable local broker recorded
    in `settings.local_broker_dir` (`<data_dir>/kafka`, see `dispatch-rl kafka`): used if it
    runs, else started when `start` is true (on `local_broker_port`), else `RuntimeError`. A
    broker started here is stopped (its data kept) when the last process using it exits
    (`local_kafka.using`), so a second worker or an audit never loses it under its feet.

    `ephemeral`: a fresh broker on free ports in a temporary directory, and `data_dir` (with
    the dataset and state dirs at their default places) moved to a temporary directory too;
    all deleted on exit. Raises `KafkaLaunchError` when the local broker cannot start (say,
    its port is taken by another program: the message says so in one line).
    """
    from streams import local_kafka

    if ephemeral:
        with tempfile.TemporaryDirectory(prefix="dispatch-rl-ephemeral-") as root:
            fresh = settings.with_data_dir(Path(root))
            if settings.bootstrap_servers:
                yield fresh
                return
            with local_kafka.LocalKafka() as kafka:
                log.info("local_broker_started", bootstrap=kafka.bootstrap, ephemeral=True)
                yield fresh.model_copy(update={"bootstrap_servers": kafka.bootstrap})
        return
    if settings.bootstrap_servers:
        yield settings
        return
    broker_dir = settings.local_broker_dir
    if not start:
        current = local_kafka.status(broker_dir)
        if not (current.running and current.state is not None):
            raise RuntimeError(
                "no Kafka bootstrap configured (DISPATCH_RL_BOOTSTRAP_SERVERS) and no local "
                f"broker runs ({current.detail}); start one with `dispatch-rl kafka start` "
                "or `dispatch-rl run`"
            )
    with local_kafka.using(
        broker_dir, port=settings.local_broker_port, controller_port=settings.local_controller_port
    ) as (state, started):
        log.info(
            "local_broker_started" if started else "local_broker_found",
            bootstrap=state.bootstrap,
            pid=state.pid,
            data=state.data_dir,
        )
        yield settings.model_copy(update={"bootstrap_servers": state.bootstrap})
    if not local_kafka.status(broker_dir).running:
        log.info("local_broker_stopped", pid=state.pid, data_kept=state.data_dir)


# ------------------------------------------------------------------ the worker


@dataclass
class RunningWorker:
    """Handle on a worker started by `running_worker`."""

    settings: Settings
    app: faust.App | None
    writer: WriterCounters | None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    store: RunningStore | None = None
    """The audit store and its consumer (when it runs in this worker)."""
    web: RunningWeb | None = None
    """The web server (audit API, dashboard, health); `web.url` says where."""
    notifier: OptimizedNotifier = field(default_factory=OptimizedNotifier)
    """Announces each `Optimized` the audit store has stored (the dashboard's live feed)."""

    def health(self) -> dict[str, Any]:
        """What `/dispatch/health/` answers: liveness and what each part has done.

        No absolute path and no host name (`streams.health.scrub`): whoever reaches the port
        reads it.
        """
        from streams.health import health_payload, scrub

        failure = self.failed()
        out: dict[str, Any] = {"app_id": self.settings.app_id}
        if self.app is not None:
            out.update(health_payload(self.app))  # model, handled, send retries, in flight
        out["status"] = "ok" if failure is None and out.get("status", "ok") == "ok" else "failing"
        if self.writer is not None:
            out["dataset"] = {"written": self.writer.written, "batches": self.writer.batches}
        if self.store is not None:
            c = self.store.counters
            out["store"] = {"records": c.records, "optimized": c.stored_optimized}
        payload: dict[str, Any] = scrub(out)
        return payload

    async def wait(self) -> None:
        """Return when a part stops on its own (the app crashed or the writer failed)."""
        waits: list[asyncio.Future[Any]] = list(self._tasks)
        if self.app is not None:
            waits.append(asyncio.ensure_future(self.app.wait_until_stopped()))
        if not waits:
            return
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for f in pending:
            if f not in self._tasks:
                f.cancel()
        for f in done:
            if f.exception() is not None:
                raise f.exception()  # type: ignore[misc]

    def failed(self) -> BaseException | None:
        """Why a part stopped, if one did."""
        if self.app is not None and self.app.crashed:
            return self.app.crash_reason or RuntimeError("optimizer app crashed")
        for t in self._tasks:
            if t.done():
                return t.exception() if not t.cancelled() else RuntimeError("writer cancelled")
        return None


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings,
    *,
    optimizer: bool = True,
    dataset: bool = True,
    provider: PolicyProvider | None = None,
    store: bool | None = None,
    web: bool | None = None,
) -> AsyncIterator[RunningWorker]:
    """Create the topics, then run the optimizer app and/or the dataset writer until exit,
    with the audit store consumer and the web server (None: as `settings` says)."""
    store = settings.store_enabled if store is None else store
    if not (optimizer or dataset or store):
        raise ValueError("nothing to run: enable the optimizer, the dataset writer or the store")
    await ensure_topics(settings)  # logs what it created and how existing topics differ
    stop = asyncio.Event()
    worker = RunningWorker(settings, None, None)
    metrics = default_metrics()
    stack = contextlib.ExitStack()
    try:
        if dataset:
            worker.writer = WriterCounters()
            await _start_dataset_writer(worker, stop, optimizer=optimizer)
        if optimizer:
            from streams.app import create_app

            worker.app = create_app(settings, provider)
            await worker.app.start()
            # /metrics reports the agent's lag and served model while it runs
            stack.enter_context(metrics.watching(settings.app_id, AgentLag(worker.app, metrics)))
            log.info("optimizer_started", app_id=settings.app_id, input=settings.topic_input)
        if store:
            from streams.audit_service import start_store

            worker.store = await start_store(settings, stop, worker.notifier)
            worker._tasks.append(worker.store.task)
        if settings.web_enabled if web is None else web:
            from streams.audit_service import start_web

            db = worker.store.store if worker.store is not None else None
            worker.web = await start_web(settings, db, worker.notifier, worker.health)
        yield worker
    finally:
        if worker.web is not None:
            await worker.web.stop()
        stop.set()
        stack.close()
        if worker.app is not None:
            await worker.app.stop()
        for task in worker._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if worker.store is not None:
            await worker.store.stop()


async def _start_dataset_writer(
    worker: RunningWorker, stop: asyncio.Event, *, optimizer: bool
) -> None:
    """The dataset writer, or a standby for it when another process on this host holds the
    dataset directory (a second worker): one log line says so, and this worker goes on
    optimizing; it takes the writer over if the lock frees."""
    settings = worker.settings
    try:
        opened = DatasetWriter(settings.dataset_dir).open()
    except DatasetLockedError as exc:
        who = f"pid {exc.pid}" if exc.pid is not None else "another process"
        role = "runs optimizer-only" if optimizer else "waits as a standby dataset writer"
        log.warning(
            "dataset_writer_elsewhere",
            message=f"dataset writer already running in {who}; this worker {role} "
            "(and takes the writer over if that one stops)",
            holder_pid=exc.pid,
        )
        worker._tasks.append(
            asyncio.create_task(
                run_dataset_writer_standby(settings, stop, counters=worker.writer),
                name="dataset-writer-standby",
            )
        )
        return
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_dataset_writer(settings, stop, ready=ready, counters=worker.writer, writer=opened),
        name="dataset-writer",
    )
    worker._tasks.append(task)
    ready_wait = asyncio.ensure_future(ready.wait())
    await asyncio.wait([ready_wait, task], return_when=asyncio.FIRST_COMPLETED)
    ready_wait.cancel()
    if task.done():
        task.result()  # the writer could not start: raise why


def run(
    settings: Settings,
    *,
    optimizer: bool = True,
    dataset: bool = True,
    provider: PolicyProvider | None = None,
    ephemeral: bool = False,
) -> int:
    """`dispatch-rl run`: start a broker if needed, create topics, serve until SIGINT/SIGTERM."""
    configure_logging(settings.log_format, settings.log_level)
    with broker_for(settings, ephemeral=ephemeral) as resolved:
        return asyncio.run(_serve(resolved, optimizer, dataset, provider))


async def _serve(
    settings: Settings, optimizer: bool, dataset: bool, provider: PolicyProvider | None
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_worker(
        settings, optimizer=optimizer, dataset=dataset, provider=provider
    ) as worker:
        # Everything loaded at start stays: out of the collector's sight, a full collection
        # (which stalls the event loop: fetches, sends, acks) walks only what came since.
        gc.freeze()
        log.info(
            "worker_running",
            bootstrap=settings.bootstrap_servers,
            optimizer=optimizer,
            dataset=dataset,
        )
        waiter = asyncio.ensure_future(worker.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        for f in (waiter, stopper):
            f.cancel()
        failure = worker.failed()
    if failure is not None:
        log.error("worker_failed", error=repr(failure))
        return 1
    log.info("worker_stopped")
    return 0


# ------------------------------------------------------------------ publishing


def read_day_files(paths: Iterable[Path]) -> list[bytes]:
    """The JSON documents in `paths`: a file holds one object, a JSON list, or JSON lines.

    Returns each document's bytes (re-serialized compactly when it came from a list or lines).
    """
    out: list[bytes] = []
    for path in paths:
        text = Path(path).read_text()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
            out.extend(json.dumps(d, separators=(",", ":")).encode() for d in docs)
            continue
        if isinstance(doc, list):
            out.extend(json.dumps(d, separators=(",", ":")).encode() for d in doc)
        else:
            out.append(text.encode())
    return out


async def publish_events(
    settings: Settings, payloads: Sequence[tuple[bytes | None, bytes]], topic: str | None = None
) -> list[float]:
    """Send `(key, value)` pairs to the input topic (or `topic`); acks=all.

    Returns the produce time (Unix seconds) of each, taken when it was handed to the producer.
    """
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        acks="all", max_request_size=MAX_MESSAGE_BYTES, linger_ms=5, **client_options(settings)
    )
    await producer.start()
    try:
        futures = []
        times = []
        for key, value in payloads:
            times.append(time.time())
            futures.append(await producer.send(topic or settings.topic_input, value, key=key))
        await asyncio.gather(*futures)
        return times
    finally:
        await producer.stop()


def keyed(events: Iterable[HeuristicDone]) -> list[tuple[bytes | None, bytes]]:
    """`(dispatch_id, json)` pairs ready for `publish_events`."""
    return [(e.dispatch_id.encode(), codec.encode(e)) for e in events]


# ------------------------------------------------------------------ demo


def demo_days(generated: int = 3, seed: int = 7) -> list[HeuristicDone]:
    """The seed day (10 bookings, 3 drivers) and `generated` synthetic days of growing size."""
    from optimizer.generate import generate_day
    from optimizer.seed import seed_day

    sizes = [(12, 3), (30, 5), (60, 8), (100, 12)]
    return [seed_day()] + [
        generate_day(*sizes[i % len(sizes)], seed=seed + i) for i in range(generated)
    ]


async def collect_optimized(
    settings: Settings, dispatch_ids: set[str], start_offsets: dict[Any, int], timeout: float
) -> dict[str, Optimized]:
    """Read `Optimized` events from `start_offsets` until every id in `dispatch_ids` was seen."""
    found: dict[str, Optimized] = {}
    async with TopicReader(settings, settings.topic_optimized) as reader:
        async for r in reader.follow(start=start_offsets, timeout=timeout):
            opt = codec.decode(Optimized, r.value)
            if isinstance(opt, Optimized) and opt.dispatch_id in dispatch_ids:
                found.setdefault(opt.dispatch_id, opt)
                if not dispatch_ids - found.keys():
                    break
    return found


async def end_offsets(settings: Settings, topic: str) -> dict[Any, int]:
    """Current end offset of every partition of `topic`."""
    return await reader_end_offsets(settings, topic)


def demo(
    settings: Settings,
    days: list[HeuristicDone],
    *,
    timeout: float = 120.0,
    ephemeral: bool = False,
) -> list[tuple[HeuristicDone, Optimized | None]]:
    """Run the worker, publish `days`, and return each day with its `Optimized` result."""
    configure_logging(settings.log_format, settings.log_level)
    with broker_for(settings, ephemeral=ephemeral) as resolved:
        return asyncio.run(_demo(resolved, days, timeout))


async def _demo(
    settings: Settings, days: list[HeuristicDone], timeout: float
) -> list[tuple[HeuristicDone, Optimized | None]]:
    async with running_worker(settings) as worker:
        if worker.web is not None:  # token and port are kept: the link works under `run` too
            print(f"dashboard: {worker.web.login_url}", flush=True)
        start = await end_offsets(settings, settings.topic_optimized)
        await publish_events(settings, keyed(days))
        found = await collect_optimized(settings, {d.dispatch_id for d in days}, start, timeout)
        if worker.store is not None:  # leave the store (the dashboard, `audit`) complete
            from streams.audit_service import store_caught_up
            from streams.store.store import consumer_group

            group = consumer_group(settings, worker.store.store)
            if not await store_caught_up(settings, group, timeout=30.0):
                log.warning("store_behind", message="the audit store has not caught up yet")
        failure = worker.failed()
        if failure is not None:
            raise RuntimeError(f"worker failed: {failure!r}")
    return [(d, found.get(d.dispatch_id)) for d in days]
