"""The one place where bytes on a topic become events and back (pydantic v2 JSON).

`decode` never raises: it returns the validated model or the list of what is wrong, so the
agent can route bad input to the dead-letter topic and go on. `encode` is compact UTF-8 JSON.
"""

from __future__ import annotations

import base64
import hashlib
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


MAX_DEAD_LETTER_ERRORS = 100
"""Errors kept in one dead letter (a huge malformed input can have thousands)."""
MAX_KEY_BYTES = 4096
"""Longest original key carried (and used as the dead letter's key); longer ones are cut."""
_LOC_PART_CHARS = 200  # a location part can be an input's own (arbitrarily long) dict key
_RECORD_OVERHEAD = 16 * 1024  # record + batch headers, with room to spare


def dead_letter(
    raw: bytes | None,
    key: bytes | None,
    errors: list[ErrorDetail],
    *,
    topic: str,
    partition: int,
    offset: int,
    at: datetime | None = None,
    max_bytes: int | None = None,
) -> DeadLetter:
    """The dead-letter event for input that could not be processed.

    It carries `raw` verbatim when the whole record (key + encoded event) fits in `max_bytes`
    (the dead-letter topic's size limit; None: no limit), else a prefix of `raw` that does,
    with `value_truncated`; `value_size` and `value_sha256` always describe the whole original,
    which stays on the input topic at the source position. Its `event_id` is deterministic
    from the source position, so a redelivered bad message gives the same id (duplicates are
    detectable downstream, as for `Optimized`).
    """
    kept = _capped_errors(errors)
    value = raw or b""
    dl = DeadLetter(
        event_id=f"dlq:{_safe(topic)}:{partition}:{offset}"[:128],
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        key_b64=None if key is None else base64.b64encode(key[:MAX_KEY_BYTES]).decode(),
        value_b64="",
        value_size=None if raw is None else len(raw),
        value_sha256=None if raw is None else hashlib.sha256(raw).hexdigest(),
        reason=kept[0].type if kept else "invalid",
        errors=tuple(kept),
        errors_total=len(errors),
        at=at or datetime.now(UTC),
    )
    room = len(value)
    if max_bytes is not None:
        # base64 turns every 3 bytes into 4 characters; JSON escapes none of them.
        used = len(encode(dl)) + len(dead_letter_key(key) or b"") + _RECORD_OVERHEAD
        room = max(0, (max_bytes - used) // 4 * 3)
    if room >= len(value):
        return dl.model_copy(update={"value_b64": base64.b64encode(value).decode()})
    return dl.model_copy(
        update={"value_b64": base64.b64encode(value[:room]).decode(), "value_truncated": True}
    )


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The key a dead letter is published under: the original key, cut to `MAX_KEY_BYTES`."""
    return None if key is None else key[:MAX_KEY_BYTES]


def _capped_errors(errors: list[ErrorDetail]) -> list[ErrorDetail]:
    out = []
    for e in errors[:MAX_DEAD_LETTER_ERRORS]:
        loc = tuple(p if isinstance(p, int) else p[:_LOC_PART_CHARS] for p in e.loc)
        capped = {"loc": loc, "msg": e.msg[:2000], "type": e.type[:200]}
        out.append(
            e if (loc, e.msg, e.type) == tuple(capped.values()) else e.model_copy(update=capped)
        )
    return out or [ErrorDetail(loc=(), msg="unknown error", type="invalid")]


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
