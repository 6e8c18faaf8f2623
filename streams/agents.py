"""The optimizer agent's work on input messages: decode, optimize, publish.

`DispatchHandler.prepare` turns one input message into the records to publish, and never
raises: bytes that do not decode or validate become one `DeadLetter` (bounded in size, with
the source topic/partition/offset); a valid event is optimized, and any exception there gives
status `fallback` with the heuristic assignment, so a dispatch is never lost. It is synchronous
and CPU-bound: callers run it in a worker thread.

`DispatchHandler.publish` sends a batch of prepared messages: first every audit, then, once all
are acknowledged by the broker (acks=all), every `Optimized` / `DeadLetter` in input order. So
a consumer never sees an `Optimized` whose audits are not durable. A failed send is retried
with backoff until it succeeds: `publish` returns only when everything is acknowledged, and
the caller acks the input offsets only then (at-least-once; redelivered inputs give outputs
with the same event ids, deterministic from the input's `event_id` or source position). A
record the topic refuses as too large is never retried as is: a dead letter is rebuilt with a
smaller prefix, an `Optimized` is replaced by a dead letter that says so.

`streams.pipeline` runs prepare/publish per partition, pipelined; `DispatchHandler.handle` is
the one-message-at-a-time path (each dispatch waits for its acknowledgements before the next).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import structlog

from optimizer.dispatch import DispatchConfig, Outcome, fallback_outcome, optimize_event
from optimizer.moves import Candidates
from optimizer.problem import FloatArray
from optimizer.serving import PolicyProvider
from optimizer.swap_pass import MovePolicy, SearchState
from schemas import ErrorDetail, HeuristicDone, Limits
from streams import codec, stage_trace
from streams.logs import RateLimiter
from streams.metrics import default_metrics

log = structlog.get_logger("dispatch_rl.streams")

HandledKind = Literal["optimized", "dead_letter"]
_MIN_DEAD_LETTER_BUDGET = 64 * 1024  # below this, a refused dead letter keeps one error only


@dataclass(frozen=True, slots=True)
class Handled:
    """What one input message became."""

    kind: HandledKind
    key: bytes | None
    status: str
    """The `Optimized` status, or `dead_letter`."""
    event_id: str
    """Event id of the `Optimized` or `DeadLetter` published."""
    audits: int = 0


@dataclass(frozen=True, slots=True)
class Source:
    """Where an input message came from (carried into dead letters)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The output topics a handler publishes to."""

    optimized: str
    audit: str
    dead_letter: str


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class Summary:
    """What publishing logs and counts of an `Optimized` (small: a prepare process sends it
    back instead of the whole outcome)."""

    dispatch_id: str
    status: str
    event_id: str
    model_version: str
    latency_ms: float
    moves_accepted: int
    gap_before: int
    gap_after: int
    decisions: tuple[tuple[str, str], ...]
    """`(decision, reason)` of each audit, in order."""

    @classmethod
    def of(cls, outcome: Outcome) -> Summary:
        opt = outcome.optimized
        return cls(
            opt.dispatch_id,
            opt.status,
            opt.event_id,
            opt.model_version,
            opt.latency_ms,
            opt.moves_accepted,
            opt.metrics.before.gap,
            opt.metrics.after.gap,
            tuple((a.decision, a.reason) for a in outcome.audits),
        )


@dataclass(slots=True)
class Prepared:
    """One input message, ready to publish: its audits, then its final record."""

    source: Source
    key: bytes | None
    raw: bytes | None
    """Kept until published: a refused record is rebuilt from it."""
    audits: list[Record]
    final: Record
    """The `Optimized` or the `DeadLetter`."""
    handled: Handled
    errors: list[ErrorDetail] = field(default_factory=list)
    """Why it is a dead letter (empty for an `Optimized`)."""
    budget: int | None = None
    """Size limit the dead letter was built for."""
    summary: Summary | None = None
    """For an `Optimized`: what `publish` logs and counts."""


@dataclass(slots=True)
class Unsent:
    """What a batch still has to send after a shared send round (`publish_round`)."""

    audits: list[tuple[Prepared, Record]]
    finals: list[tuple[Prepared, Record]]

    @classmethod
    def all_of(cls, batch: Sequence[Prepared]) -> Unsent:
        return cls([(p, r) for p in batch for r in p.audits], [(p, p.final) for p in batch])


class Sender(Protocol):
    """Hands one record to the producer; the returned awaitable is its acknowledgement."""

    def __call__(
        self, topic: str, key: bytes | None, value: bytes
    ) -> Awaitable[Awaitable[Any]]: ...


class _UnavailablePolicy:
    """Stands in when the provider itself fails: the pass falls back, the dispatch goes on."""

    version = "unavailable"

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def score(self, state: SearchState, candidates: Candidates) -> FloatArray:
        raise RuntimeError(f"no policy: {type(self._error).__name__}: {self._error}")


def last_resort(event: HeuristicDone, reason: str, policy: Any) -> Outcome:
    """Status `fallback` with the upstream assignment, for when the core itself raised."""
    try:
        version = str(policy.version)
    except Exception:
        version = "unavailable"
    return fallback_outcome(event, reason, version)


def too_large(exc: BaseException) -> bool:
    """True when the producer or the broker refused a record for its size (never retried)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        name = type(seen).__name__
        if name in {"MessageSizeTooLargeError", "RecordTooLargeError", "RecordListTooLargeError"}:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before the n-th retry of a failed send: initial x 2^n, at most `maximum`."""

    initial: float = 0.1
    maximum: float = 10.0

    def delay(self, attempt: int) -> float:
        return float(min(self.maximum, self.initial * 2 ** min(attempt, 30)))


class DispatchHandler:
    """Prepares and publishes input messages; shared by every partition of a worker."""

    def __init__(
        self,
        topics: TopicNames,
        provider: PolicyProvider,
        config: DispatchConfig,
        limits: Limits,
        send: Sender,
        *,
        max_record_bytes: int | None = None,
        backoff: Backoff = Backoff(),
        on_published: Callable[[Prepared], None] | None = None,
    ) -> None:
        self.topics = topics
        self.provider = provider
        self.config = config
        self.limits = limits
        self.send = send
        self.max_record_bytes = max_record_bytes
        """The output topics' size limit: dead letters are built to fit under it."""
        self.backoff = backoff
        self.on_published = on_published
        """Called once per input message after its final record is acknowledged (metrics)."""
        self.counts: Counter[str] = Counter()
        """Messages handled per outcome status (and `dead_letter`), for the health view."""
        self.retries: Counter[str] = Counter()
        """Failed sends retried, per topic."""
        self._limiter = RateLimiter()

    # ------------------------------------------------------------------ prepare (in a thread)

    def prepare(self, raw: bytes | None, key: bytes | None, source: Source) -> Prepared:
        """Decode, optimize and encode one message; never raises."""
        return self._prepare(raw, key, source, None)

    def prepare_without_pass(
        self, raw: bytes | None, key: bytes | None, source: Source, reason: str
    ) -> Prepared:
        """`prepare` with status `fallback` (the heuristic assignment, no pass) and `reason`:
        for a message whose pass cannot be run (it killed the process running it)."""
        return self._prepare(raw, key, source, reason)

    def _prepare(
        self, raw: bytes | None, key: bytes | None, source: Source, without_pass: str | None
    ) -> Prepared:
        decoded = codec.decode_heuristic_done(raw, self.limits)
        if isinstance(decoded, list):
            return self._dead_letter(raw, key, decoded, source)
        try:
            if without_pass is None:
                outcome = self._optimize(decoded)
            else:
                outcome = last_resort(decoded, without_pass, self._policy_or_none())
            records = codec.outcome_records(outcome)
        except Exception as exc:  # encoding failed: the heuristic result still goes out
            log.exception("outcome_encoding_failed", dispatch_id=decoded.dispatch_id)
            outcome = last_resort(decoded, f"error: {type(exc).__name__}: {exc}", None)
            records = codec.outcome_records(outcome)
        audits = [Record(self.topics.audit, k, v) for kind, k, v in records if kind == "audit"]
        [final] = [Record(self.topics.optimized, k, v) for kind, k, v in records if kind != "audit"]
        opt = outcome.optimized
        handled = Handled("optimized", key, opt.status, opt.event_id, len(audits))
        return Prepared(source, key, raw, audits, final, handled, summary=Summary.of(outcome))

    def prepare_all(
        self, items: Sequence[tuple[bytes | None, bytes | None, Source]]
    ) -> list[Prepared]:
        """`prepare` for each `(raw, key, source)`, in order (one thread hop for a batch)."""
        return [self.prepare(raw, key, source) for raw, key, source in items]

    def _policy_or_none(self) -> MovePolicy | None:
        try:
            return self.provider.policy()
        except Exception:
            return None

    def _optimize(self, event: HeuristicDone) -> Outcome:
        try:
            policy: MovePolicy = self.provider.policy()
        except Exception as exc:
            log.exception("policy_unavailable", dispatch_id=event.dispatch_id)
            policy = _UnavailablePolicy(exc)
        try:
            return optimize_event(event, policy, self.config)
        except Exception as exc:
            # optimize_event promises not to raise for a valid event; if it does anyway, the
            # heuristic result still goes out.
            log.exception("optimize_event_raised", dispatch_id=event.dispatch_id)
            return last_resort(event, f"error: {type(exc).__name__}: {exc}", policy)

    def _dead_letter(
        self,
        raw: bytes | None,
        key: bytes | None,
        errors: list[ErrorDetail],
        source: Source,
        budget: int | None = None,
    ) -> Prepared:
        budget = self.max_record_bytes if budget is None else budget
        dl = codec.dead_letter(
            raw,
            key,
            errors,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            max_bytes=budget,
        )
        record = Record(self.topics.dead_letter, codec.dead_letter_key(key), codec.encode(dl))
        handled = Handled("dead_letter", key, "dead_letter", dl.event_id)
        return Prepared(source, key, raw, [], record, handled, errors=errors, budget=budget)

    # ------------------------------------------------------------------ publish (event loop)

    async def handle(self, raw: bytes | None, key: bytes | None, source: Source) -> Handled:
        """One message: prepare in a thread, publish, return once acknowledged."""
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(None, self.prepare, raw, key, source)
        await self.publish([prepared])
        return prepared.handled

    async def publish(self, batch: Sequence[Prepared]) -> None:
        """Audits of the whole batch, acknowledged; then the final records, acknowledged.

        Returns only when every record is acknowledged (failed sends are retried forever).
        """
        await self.finish(batch, Unsent.all_of(batch))

    async def publish_round(self, batches: Sequence[Sequence[Prepared]]) -> list[Unsent]:
        """One send round for several partitions' batches: every audit of all of them,
        acknowledged; then the final records of the batches whose audits all were,
        acknowledged. Returns what each batch still has to send (from its first failed record
        on; nothing when all were acknowledged): `finish` sends it, with retries, for that
        batch alone, so a partition whose sends fail holds only itself.
        """
        stage_trace.mark_all((p.key for b in batches for p in b), "round0")
        audits = [[(p, r) for p in b for r in p.audits] for b in batches]
        failed = _split(await self._round([x for a in audits for x in a]), audits)
        stage_trace.mark_all((p.key for b in batches for p in b), "aud1")
        finals: list[list[tuple[Prepared, Record]]] = [
            [(p, p.final) for p in b] if f is None else []
            for b, f in zip(batches, failed, strict=True)
        ]
        failed_finals = _split(await self._round([x for f in finals for x in f]), finals)
        stage_trace.mark_all((p.key for b in batches for p in b), "fin1")
        out = []
        for b, a, fa, fi, ff in zip(batches, audits, failed, finals, failed_finals, strict=True):
            if fa is not None:
                out.append(Unsent(a[fa:], [(p, p.final) for p in b]))
            else:
                out.append(Unsent([], fi[ff:] if ff is not None else []))
        return out

    async def finish(self, batch: Sequence[Prepared], unsent: Unsent) -> None:
        """Send what `unsent` holds of `batch` (audits first, acknowledged, then finals),
        retrying until acknowledged; then count and log the batch as published."""
        if unsent.audits:
            await self._deliver(unsent.audits)
        if unsent.finals:
            await self._deliver(unsent.finals, final=True)
        for p in batch:
            self._published(p)

    def _published(self, p: Prepared) -> None:
        self.counts[p.handled.status] += 1
        if p.handled.kind == "dead_letter":
            default_metrics().record_dead_letter(p.source)
        elif p.summary is not None:
            s = p.summary
            default_metrics().record_published(
                s.status, s.latency_ms, s.model_version, s.decisions, p.source
            )
        if self.on_published is not None:
            try:
                self.on_published(p)
            except Exception:  # metrics must never stop the pipeline
                log.exception("on_published_failed")
        if p.handled.kind == "dead_letter":
            first = p.errors[0] if p.errors else None
            log.warning(
                "dead_letter",
                source_topic=p.source.topic,
                partition=p.source.partition,
                offset=p.source.offset,
                reason=first.type if first else "invalid",
                errors=len(p.errors),
                first_error=f"{'.'.join(map(str, first.loc))}: {first.msg}" if first else "",
                bytes=len(p.raw or b""),
                truncated=p.budget is not None and len(p.final.value) < len(p.raw or b""),
            )
            return
        assert p.summary is not None
        s = p.summary
        log.info(
            "dispatch_published",
            dispatch_id=s.dispatch_id,
            status=s.status,
            event_id=s.event_id,
            audits=len(p.audits),
            accepted=s.moves_accepted,
            gap_before=s.gap_before,
            gap_after=s.gap_after,
            latency_ms=s.latency_ms,
            partition=p.source.partition,
            offset=p.source.offset,
        )

    async def _deliver(self, items: list[tuple[Prepared, Record]], *, final: bool = False) -> None:
        """Send every record, in order; resend from the first failure until all are acked."""
        attempt = 0
        while items:
            results = await self._send_once(items)
            failed = [i for i, r in enumerate(results) if r is not None]
            if not failed:
                return
            for i in failed:
                error = results[i]
                assert error is not None
                if final and too_large(error):
                    items[i] = self._smaller(items[i][0], error)
            # Resend from the first failure on, so records of one partition keep their order.
            items = items[failed[0] :]
            first = results[failed[0]]
            delay = self.backoff.delay(attempt)
            assert first is not None
            self._failed_send(
                items[0][1].topic,
                first,
                len(failed),
                records=len(items),
                retry_in_s=round(delay, 2),
            )
            attempt += 1
            await asyncio.sleep(delay)

    async def _round(self, items: list[tuple[Prepared, Record]]) -> list[BaseException | None]:
        """`_send_once`, counting and logging (rate-limited) what failed: `finish` resends it."""
        errors = await self._send_once(items)
        for (p, rec), error in zip(items, errors, strict=True):
            if error is not None:
                self._failed_send(rec.topic, error, 1, input_partition=p.source.partition)
        return errors

    def _failed_send(self, topic: str, error: BaseException, count: int, **fields: Any) -> None:
        """Count `count` failed sends to `topic` and log it, one line per distinct error per
        interval (`RateLimiter`): an outage must not flood the log."""
        self.retries[topic] += count
        held = self._limiter.allow(f"send_failed|{topic}|{type(error).__name__}")
        if held is not None:
            log.error(
                "send_failed_retrying",
                topic=topic,
                error=repr(error)[:500],
                repeated=held,
                **fields,
            )

    async def _send_once(
        self, items: Sequence[tuple[Prepared, Record]]
    ) -> list[BaseException | None]:
        """Hand every record to the producer, in order, then wait for every acknowledgement;
        each record's error (None: acknowledged)."""
        if not items:
            return []
        acks: list[Awaitable[Any] | BaseException] = []
        for _, rec in items:
            try:
                acks.append(await self.send(rec.topic, rec.key, rec.value))
            except Exception as exc:  # refused before it left (size, closed producer)
                acks.append(exc)
        results = await asyncio.gather(
            *(_failed(a) if isinstance(a, BaseException) else a for a in acks),
            return_exceptions=True,
        )
        out: list[BaseException | None] = []
        for r in results:
            if isinstance(r, asyncio.CancelledError):
                raise r
            out.append(r if isinstance(r, BaseException) else None)
        return out

    def _smaller(self, p: Prepared, exc: BaseException) -> tuple[Prepared, Record]:
        """A replacement for a final record the topic refused as too large."""
        if p.handled.kind == "optimized":
            size = len(p.final.value)
            err = ErrorDetail(
                loc=(),
                msg=f"the Optimized event ({size} bytes) is larger than the output topic "
                f"accepts: {type(exc).__name__}",
                type="output_too_large",
            )
            budget = self.max_record_bytes
        else:
            err = None
            budget = max(0, (p.budget or len(p.final.value)) // 2)
        errors = p.errors if err is None else [err]
        if budget is not None and budget < _MIN_DEAD_LETTER_BUDGET:
            errors = errors[:1]
        new = self._dead_letter(p.raw, p.key, errors, p.source, budget)
        log.warning(
            "record_too_large",
            topic=p.final.topic,
            bytes=len(p.final.value),
            replaced_by=f"dead letter of {len(new.final.value)} bytes",
            offset=p.source.offset,
            partition=p.source.partition,
        )
        # In place: the batch being published holds this object.
        p.final, p.handled, p.errors, p.budget = new.final, new.handled, errors, budget
        return p, p.final


async def _failed(exc: BaseException) -> Any:
    raise exc


def _split(
    errors: list[BaseException | None], parts: Sequence[Sequence[object]]
) -> list[int | None]:
    """For each part of a concatenated send, the index of its first failed record (None:
    every record acknowledged)."""
    out: list[int | None] = []
    at = 0
    for part in parts:
        mine = errors[at : at + len(part)]
        at += len(part)
        out.append(next((i for i, e in enumerate(mine) if e is not None), None))
    return out
