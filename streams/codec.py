"""The one place where bytes on a topic become events and back (pydantic v2 JSON).

`decode` never raises: it returns the validated model or the list of what is wrong, so the
agent can route bad input to the dead-letter topic and go on. `encode` is compact UTF-8 JSON.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from optimizer.adapter import EventKind
from optimizer.dispatch import Outcome
from schemas import DeadLetter, ErrorDetail, HeuristicDone, Limits, Optimized, SwapAudit

M = TypeVar("M", bound=BaseModel)
DispatchEvent = HeuristicDone | Optimized | SwapAudit

EVENT_MODELS: dict[EventKind, type[HeuristicDone] | type[Optimized] | type[SwapAudit]] = {
    "heuristic_done": HeuristicDone,
    "optimized": Optimized,
    "swap_audit": SwapAudit,
}
"""The model of each dispatch event kind."""


def decode(
    model: type[M], raw: bytes | None, context: dict[str, Any] | None = None
) -> M | list[ErrorDetail]:
    """Validate `raw` JSON as `model`; the model, or one `ErrorDetail` per problem found.

    Not JSON, wrong types, NaN/inf numbers, unknown references and size limits (pass
    `Limits.context()` as `context`) all come back as errors, never as an exception.
    """
    if raw is None:
        return [ErrorDetail(loc=(), msg="message has no value (tombstone)", type="missing_value")]
    try:
        return model.model_validate_json(raw, context=context)
    except ValidationError as exc:
        return errors_of(exc)
    except Exception as exc:  # e.g. RecursionError on absurdly nested input: still bad input
        return [ErrorDetail(loc=(), msg=f"{type(exc).__name__}: {exc}", type="decode_error")]


def decode_heuristic_done(
    raw: bytes | None, limits: Limits | None = None
) -> HeuristicDone | list[ErrorDetail]:
    """`decode(HeuristicDone, raw)` with the size limits of `limits` (default limits if None)."""
    return decode(HeuristicDone, raw, (limits or Limits()).context())


def decode_kind(
    kind: EventKind, raw: bytes | None, limits: Limits | None = None
) -> DispatchEvent | list[ErrorDetail]:
    """Decode one of the three dispatch events by kind (input size limits from `limits`)."""
    if kind == "heuristic_done":
        return decode_heuristic_done(raw, limits)
    return decode(EVENT_MODELS[kind], raw)


def errors_of(exc: ValidationError) -> list[ErrorDetail]:
    """pydantic's errors as `ErrorDetail`s (location, message, machine-readable type)."""
    out = [
        ErrorDetail(
            loc=tuple(p if isinstance(p, int) else str(p) for p in e["loc"]),
            msg=str(e["msg"])[:2000],
            type=str(e["type"]),
        )
        for e in exc.errors(include_url=False, include_input=False)
    ]
    return out or [ErrorDetail(loc=(), msg=str(exc)[:2000], type="validation_error")]


def encode(event: BaseModel) -> bytes:
    """Compact JSON bytes of an event (what goes on the wire)."""
    return event.model_dump_json().encode()


def dead_letter(
    raw: bytes | None,
    key: bytes | None,
    errors: list[ErrorDetail],
    *,
    topic: str,
    partition: int,
    offset: int,
    at: datetime | None = None,
) -> DeadLetter:
    """The dead-letter event for input that could not be processed; carries `raw` verbatim.

    Its `event_id` is deterministic from the source position, so a redelivered bad message
    gives the same id (duplicates are detectable downstream, as for `Optimized`).
    """
    return DeadLetter(
        event_id=f"dlq:{_safe(topic)}:{partition}:{offset}"[:128],
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key_b64=None if key is None else base64.b64encode(key).decode(),
        value_b64=base64.b64encode(raw or b"").decode(),
        errors=tuple(errors),
        at=at or datetime.now(UTC),
    )


def outcome_records(outcome: Outcome) -> list[tuple[str, bytes, bytes]]:
    """`(kind, key, value)` for every event of an outcome: audits first, then `Optimized`.

    `kind` is `"audit"` or `"optimized"`; every key is the `dispatch_id`.
    """
    key = outcome.optimized.dispatch_id.encode()
    out = [("audit", key, encode(a)) for a in outcome.audits]
    out.append(("optimized", key, encode(outcome.optimized)))
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.:-" else "_" for c in name)
