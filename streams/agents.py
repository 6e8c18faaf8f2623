"""The optimizer agent's work for one input message: decode, optimize, publish.

`DispatchHandler.handle` is what the Faust agent calls per message (see `streams.app`). It never
raises for bad input or a failing optimizer:

* bytes that do not decode/validate -> one `DeadLetter` (original bytes, errors, source
  topic/partition/offset), keyed by the original key;
* a valid event -> `optimize_event` in a worker thread (long passes stay off the event loop);
  any exception gives status `fallback` with the heuristic assignment, so a dispatch is never
  lost.

Ordering and delivery: the audits of a dispatch are sent first and acknowledged by the broker
(acks=all) before its `Optimized` is sent, so once an `Optimized` is visible, every audit that
explains it is durable. The handler returns only after the `Optimized` (or `DeadLetter`) is
acknowledged, and Faust commits an offset only after the agent has moved past it: delivery is
at-least-once. A redelivered input yields outputs with the same event ids (deterministic from the
input's `event_id`), so duplicates are detectable downstream.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from optimizer.dispatch import (
    DispatchConfig,
    Outcome,
    fallback_outcome,
    optimize_event,
)
from optimizer.moves import Candidates
from optimizer.problem import FloatArray
from optimizer.serving import PolicyProvider
from optimizer.swap_pass import MovePolicy, SearchState
from schemas import HeuristicDone, Limits
from streams import codec
from streams.metrics import default_metrics
from streams.topics import Topics

log = structlog.get_logger("dispatch_rl.streams")

HandledKind = Literal["optimized", "dead_letter"]


@dataclass(frozen=True, slots=True)
class Handled:
    """What one input message became (the agent yields this; tests read it)."""

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


class DispatchHandler:
    """Decodes, optimizes and publishes one message at a time (agent concurrency 1)."""

    def __init__(
        self,
        topics: Topics,
        provider: PolicyProvider,
        config: DispatchConfig,
        limits: Limits,
    ) -> None:
        self.topics = topics
        self.provider = provider
        self.config = config
        self.limits = limits
        self.counts: Counter[str] = Counter()
        """Messages handled per outcome status (and `dead_letter`), for the health view."""

    async def handle(self, raw: bytes | None, key: bytes | None, source: Source) -> Handled:
        decoded = codec.decode_heuristic_done(raw, self.limits)
        if isinstance(decoded, list):
            return await self._dead_letter(raw, key, decoded, source)
        outcome = await self.optimize(decoded)
        await self._publish(outcome)
        opt = outcome.optimized
        log.info(
            "dispatch_published",
            dispatch_id=opt.dispatch_id,
            status=opt.status,
            event_id=opt.event_id,
            audits=len(outcome.audits),
            accepted=opt.moves_accepted,
            gap_before=opt.metrics.before.gap,
            gap_after=opt.metrics.after.gap,
            latency_ms=opt.latency_ms,
            partition=source.partition,
            offset=source.offset,
        )
        self.counts[opt.status] += 1
        default_metrics().record_outcome(opt, outcome.audits, source)
        return Handled("optimized", key, opt.status, opt.event_id, len(outcome.audits))

    async def optimize(self, event: HeuristicDone) -> Outcome:
        """`optimize_event` off the event loop; never raises."""
        try:
            policy: MovePolicy = self.provider.policy()
        except Exception as exc:
            log.exception("policy_unavailable", dispatch_id=event.dispatch_id)
            policy = _UnavailablePolicy(exc)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, optimize_event, event, policy, self.config)
        except Exception as exc:
            # optimize_event promises not to raise for a valid event; if it does anyway, the
            # heuristic result still goes out.
            log.exception("optimize_event_raised", dispatch_id=event.dispatch_id)
            return last_resort(event, f"error: {type(exc).__name__}: {exc}", policy)

    async def _publish(self, outcome: Outcome) -> None:
        records = codec.outcome_records(outcome)
        audits = [self._send(self.topics.audit, k, v) for kind, k, v in records if kind == "audit"]
        if audits:
            await asyncio.gather(*audits)
        [(_, key, value)] = [r for r in records if r[0] == "optimized"]
        await self._send(self.topics.optimized, key, value)

    async def _dead_letter(
        self, raw: bytes | None, key: bytes | None, errors: list[Any], source: Source
    ) -> Handled:
        dl = codec.dead_letter(
            raw, key, errors, topic=source.topic, partition=source.partition, offset=source.offset
        )
        log.warning(
            "dead_letter",
            source_topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            errors=len(errors),
            first_error=f"{'.'.join(map(str, errors[0].loc))}: {errors[0].msg}",
            bytes=len(raw or b""),
        )
        await self._send(self.topics.dead_letter, key, codec.encode(dl))
        self.counts["dead_letter"] += 1
        default_metrics().record_dead_letter(source)
        return Handled("dead_letter", key, "dead_letter", dl.event_id)

    async def _send(self, topic: Any, key: bytes | None, value: bytes) -> Any:
        # force=True: send now, never attach to the source offset; awaiting the returned
        # future waits for the broker's acknowledgement.
        fut: Awaitable[Any] = await topic.send(key=key, value=value, force=True)
        return await fut
