"""The optimizer agent's work on input messages: decode, optimize, publish.

`DispatchHandler.prepare` turns one input message into the records to publish, and never
raises: bytes that do not decode or validate become one `DeadLetter` (bounded in size, with
the source topic/partition/offset); a valid event is optimized, and any exception there gives
status `fallback` with the heuristic assignment, so a dispatch is never lost. It is synchronous
and CPU-bound: callers run it in a worker thread or a prepare process.

The sending half (`publish`, `publish_round`, `finish`, the retries) is `streams.publishing`'s
`Publisher`, which `DispatchHandler` is: audits acknowledged before their `Optimized` is sent,
failed sends retried until acknowledged, records refused as too large rebuilt smaller.

`streams.pipeline` runs prepare/publish per partition, pipelined; `DispatchHandler.handle` is
the one-message-at-a-time path (each dispatch waits for its acknowledgements before the next).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from optimizer.dispatch import DispatchConfig, Outcome, fallback_outcome, optimize_event
from optimizer.moves import Candidates
from optimizer.problem import FloatArray
from optimizer.serving import PolicyProvider
from optimizer.swap_pass import MovePolicy, SearchState
from schemas import ErrorDetail, HeuristicDone, Limits
from streams import codec
from streams.publishing import DEFAULT_BACKOFF, Backoff, Publisher, Sender, Unsent, too_large

__all__ = [
    "Backoff",
    "DispatchHandler",
    "Handled",
    "HandledKind",
    "Prepared",
    "Record",
    "Sender",
    "Source",
    "Summary",
    "TopicNames",
    "Unsent",
    "last_resort",
    "too_large",
]

log = structlog.get_logger("dispatch_rl.streams")

HandledKind = Literal["optimized", "dead_letter"]


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


class DispatchHandler(Publisher):
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
        backoff: Backoff = DEFAULT_BACKOFF,
        on_published: Callable[[Prepared], None] | None = None,
    ) -> None:
        super().__init__(
            send,
            self._dead_letter,
            max_record_bytes=max_record_bytes,
            backoff=backoff,
            on_published=on_published,
        )
        self.topics = topics
        self.provider = provider
        self.config = config
        self.limits = limits

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
