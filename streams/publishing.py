"""The sending half of `DispatchHandler`: publish prepared messages, retrying until acked.

`Publisher.publish` sends a batch of prepared messages: first every audit, then, once all are
acknowledged by the broker (acks=all), every `Optimized` / `DeadLetter` in input order. So a
consumer never sees an `Optimized` whose audits are not durable. A failed send is retried with
backoff until it succeeds: `publish` returns only when everything is acknowledged, and the
caller acks the input offsets only then (at-least-once; redelivered inputs give outputs with
the same event ids, deterministic from the input's `event_id` or source position). A record
the topic refuses as too large is never retried as is: a dead letter is rebuilt with a smaller
prefix, an `Optimized` is replaced by a dead letter that says so.

`publish_round` is one send round for several partitions' batches (`streams.batching`), and
`finish` sends what a round left unsent, for one batch, retrying. `DispatchHandler`
(`streams.agents`) is a `Publisher`: it adds the preparing half.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from schemas import ErrorDetail
from streams import stage_trace
from streams.logs import RateLimiter
from streams.metrics import default_metrics

if TYPE_CHECKING:
    from streams.agents import Prepared, Record, Source

__all__ = [
    "DEFAULT_BACKOFF",
    "Backoff",
    "DeadLetterBuilder",
    "Publisher",
    "Sender",
    "Unsent",
    "too_large",
]

log = structlog.get_logger("dispatch_rl.streams")

_MIN_DEAD_LETTER_BUDGET = 64 * 1024  # below this, a refused dead letter keeps one error only


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


DEFAULT_BACKOFF = Backoff()


class DeadLetterBuilder(Protocol):
    """Builds the dead letter of an input within `budget` bytes (the preparing half's
    `DispatchHandler._dead_letter`): what replaces a final record the topic refused."""

    def __call__(
        self,
        raw: bytes | None,
        key: bytes | None,
        errors: list[ErrorDetail],
        source: Source,
        budget: int | None = None,
    ) -> Prepared: ...


class Publisher:
    """Publishes prepared messages (see the module docstring); `DispatchHandler` is one."""

    def __init__(
        self,
        send: Sender,
        dead_letter: DeadLetterBuilder,
        *,
        max_record_bytes: int | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        on_published: Callable[[Prepared], None] | None = None,
    ) -> None:
        self.send = send
        self.dead_letter = dead_letter
        """Rebuilds a final record the topic refused as too large (`_smaller`)."""
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
        new = self.dead_letter(p.raw, p.key, errors, p.source, budget)
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
