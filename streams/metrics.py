"""Prometheus metrics of the worker, served at `/metrics` by the web server.

One recorder per process (`default_metrics()`), with its own registry. The optimizer agent calls
`record_outcome` once per dispatch and `record_dead_letter` once per bad message; the running
worker registers its consumers with `watching(...)` so that each scrape reports their lag and
the model being served. Names follow the Prometheus conventions (`dispatch_rl_` prefix, base
units, `_total` counters, `_info` for the serving model):

* `dispatch_rl_dispatches_total{status}`: dispatches published, by `Optimized.status`;
* `dispatch_rl_pass_latency_seconds`: histogram of the time spent on one dispatch;
* `dispatch_rl_moves_total{decision,reason}`: checked moves (one per `SwapAudit`);
* `dispatch_rl_dead_letters_total{source_topic}`: input sent to the dead-letter topic;
* `dispatch_rl_consumer_lag_messages{consumer,topic,partition}`: messages not yet processed,
  computed at scrape time (the partition's high-water mark minus the consumer's position);
* `dispatch_rl_serving_model_info{model_version}`: 1 for the model that serves now.

Lag of the optimizer agent is measured against the last offset the agent has *finished*, not
Faust's fetch position: Faust fetches ahead into a buffer, so its position says "consumed" for
messages still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, get_args

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from schemas import Optimized, SwapAudit
from schemas.events import Decision, Reason, Status

log = structlog.get_logger("dispatch_rl.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: small days take milliseconds, the largest ones up to the pass time limit (30 s)."""
SCRAPE_TIMEOUT_S = 2.0
"""A lag source slower than this is left out of one scrape rather than stall it."""


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Messages behind the end of one partition, for one consumer."""

    topic: str
    partition: int
    lag: int


class Position(Protocol):
    """Where a handled message came from (`streams.agents.Source` is one)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class LagSource(Protocol):
    """What the scrape asks of a running consumer."""

    async def lags(self) -> Iterable[PartitionLag]: ...

    def model_version(self) -> str | None:
        """The model this consumer serves, if it serves one."""
        ...


class DispatchMetrics:
    """The worker's metrics and the calls that move them (thread-safe, like prometheus-client)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.dispatches = Counter(
            "dispatch_rl_dispatches",
            "Dispatches published on the optimized topic, by status.",
            ["status"],
            registry=self.registry,
        )
        self.pass_latency = Histogram(
            "dispatch_rl_pass_latency_seconds",
            "Time spent on one dispatch: decode to published result (Optimized.latency_ms).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.moves = Counter(
            "dispatch_rl_moves",
            "Moves checked by the swap pass (one SwapAudit each), by decision and reason.",
            ["decision", "reason"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "dispatch_rl_dead_letters",
            "Input messages sent to the dead-letter topic, by the topic they came from.",
            ["source_topic"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "dispatch_rl_consumer_lag_messages",
            "Messages in the partition not yet processed by the consumer (at scrape time).",
            ["consumer", "topic", "partition"],
            registry=self.registry,
        )
        self.serving_model = Gauge(
            "dispatch_rl_serving_model_info",
            "The model that ranks moves now (value 1; the version is the label).",
            ["model_version"],
            registry=self.registry,
        )
        # Every status and decision/reason pair exists from the start at 0, so a rate() over
        # a series that has not happened yet is 0, not absent.
        for status in get_args(Status):
            self.dispatches.labels(status=status)
        for decision in get_args(Decision):
            for reason in get_args(Reason):
                self.moves.labels(decision=decision, reason=reason)
        self._lock = threading.Lock()
        self._sources: dict[str, LagSource] = {}
        self._model: str | None = None
        self._done: dict[tuple[str, int], int] = {}

    # ---------------------------------------------------------------- recording

    def record_outcome(
        self, optimized: Optimized, audits: Sequence[SwapAudit], source: Position | None = None
    ) -> None:
        """One dispatch published: its status, latency, every checked move, its model.

        `source`, the input message's position, moves the agent's lag.
        """
        self.record_published(
            optimized.status,
            optimized.latency_ms,
            optimized.model_version,
            [(a.decision, a.reason) for a in audits],
            source,
        )

    def record_published(
        self,
        status: str,
        latency_ms: float,
        model_version: str,
        decisions: Iterable[tuple[str, str]],
        source: Position | None = None,
    ) -> None:
        """`record_outcome` from the few fields it reads (what a prepare process sends back)."""
        self.dispatches.labels(status=status).inc()
        self.pass_latency.observe(latency_ms / 1000.0)
        for decision, reason in decisions:
            self.moves.labels(decision=decision, reason=reason).inc()
        self._serve(model_version)
        if source is not None:
            self._finished(source)

    def record_dead_letter(self, source: Position) -> None:
        """One input message dead-lettered."""
        self.dead_letters.labels(source_topic=source.topic).inc()
        self._finished(source)

    def _finished(self, source: Position) -> None:
        key = (source.topic, source.partition)
        with self._lock:
            self._done[key] = max(self._done.get(key, 0), source.offset + 1)

    def finished_up_to(self, topic: str, partition: int) -> int | None:
        """The offset after the last message handled on that partition, if any was."""
        with self._lock:
            return self._done.get((topic, partition))

    def _serve(self, version: str) -> None:
        with self._lock:
            if version == self._model:
                return
            if self._model is not None:
                self.serving_model.remove(self._model)
            self.serving_model.labels(model_version=version).set(1)
            self._model = version

    # ---------------------------------------------------------------- consumers

    def watch(self, name: str, source: LagSource) -> Callable[[], None]:
        """Report `source`'s lag (as consumer `name`) on every scrape until the returned
        function is called (for a consumer loop: call it where the consumer stops)."""
        with self._lock:
            self._sources[name] = source

        def unwatch() -> None:
            with self._lock:
                if self._sources.get(name) is source:
                    del self._sources[name]
            self._clear_lag(name)

        return unwatch

    @contextlib.contextmanager
    def watching(self, name: str, source: LagSource) -> Iterator[None]:
        """`watch` for the duration of a `with` block."""
        unwatch = self.watch(name, source)
        try:
            yield
        finally:
            unwatch()

    async def refresh(self) -> None:
        """Ask every watched consumer for its lag and model (called by each scrape)."""
        with self._lock:
            sources = dict(self._sources)
        for name, source in sources.items():
            try:
                version = source.model_version()
                if version:
                    self._serve(version)
                lags = list(await asyncio.wait_for(source.lags(), SCRAPE_TIMEOUT_S))
            except Exception as exc:  # a consumer mid-rebalance must not break the scrape
                log.warning("lag_unavailable", consumer=name, error=repr(exc))
                continue
            self._clear_lag(name)  # partitions move between workers on a rebalance
            for p in lags:
                self.consumer_lag.labels(
                    consumer=name, topic=p.topic, partition=str(p.partition)
                ).set(max(p.lag, 0))

    def _clear_lag(self, name: str) -> None:
        for labels in _label_sets(self.consumer_lag):
            if labels[0] == name:
                with contextlib.suppress(KeyError):
                    self.consumer_lag.remove(*labels)

    async def render(self) -> tuple[bytes, str]:
        """(body, content type) of a scrape, after refreshing lags."""
        await self.refresh()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _label_sets(metric: Gauge) -> list[tuple[str, ...]]:
    # prometheus-client keeps children by label values; there is no public listing.
    with metric._lock:
        return [tuple(labels) for labels in metric._metrics]


_DEFAULT: DispatchMetrics | None = None
_DEFAULT_LOCK = threading.Lock()


def default_metrics() -> DispatchMetrics:
    """The process's recorder (created on first use)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = DispatchMetrics()
        return _DEFAULT


# -------------------------------------------------------------------- lag sources


class AgentLag:
    """Lag of the optimizer agent (a Faust app): high-water mark minus the next offset to do.

    The next offset to do is the later of the one after the last message the agent finished
    (from `metrics`: `record_outcome`/`record_dead_letter` with the source position) and the
    group's committed offset (what Faust committed or found at assignment; 0 when nothing was
    committed yet). Faust's fetch position is not used: it runs ahead of the agent
    by everything buffered.
    """

    def __init__(self, app: Any, metrics: DispatchMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def lags(self) -> list[PartitionLag]:
        consumer = self._app.consumer
        # Faust keeps the committed offsets it knows in this mapping; no public accessor.
        committed: dict[Any, int | None] = dict(getattr(consumer, "_committed_offset", {}))
        out = []
        for tp in sorted(consumer.assignment()):
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = self._metrics.finished_up_to(tp.topic, tp.partition)
            # Nothing finished or committed yet (Faust says -1 or None): the group starts at
            # the log start, taken as 0 here (asking the broker goes through Faust's consumer
            # thread, which does not answer while the agent is busy).
            position = max(p for p in (done, committed.get(tp), 0) if p is not None)
            out.append(PartitionLag(tp.topic, tp.partition, int(high) - int(position)))
        return out

    def model_version(self) -> str | None:
        handler = getattr(self._app, "dispatch_handler", None)
        if handler is None:
            return None
        return str(handler.provider.policy().version)


class ConsumerLag:
    """Lag of an aiokafka consumer that processes what it fetches before fetching more."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    async def lags(self) -> list[PartitionLag]:
        out = []
        for tp in sorted(self._consumer.assignment()):
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            position = await self._consumer.position(tp)
            out.append(PartitionLag(tp.topic, tp.partition, int(high) - int(position)))
        return out

    def model_version(self) -> str | None:
        return None


# -------------------------------------------------------------------- the web route


def register(app: Any, ctx: Any) -> None:
    """Serve `GET /metrics` (Prometheus text format) on the web app; open like health."""
    from fastapi import Response

    metrics = default_metrics()

    async def scrape() -> Response:
        body, content_type = await metrics.render()
        return Response(body, media_type=content_type)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
