"""The codec: bytes on a topic <-> events; bad input becomes errors, never an exception."""

from __future__ import annotations

import base64
import json

from optimizer.dispatch import optimize_event
from optimizer.policy import GreedyPolicy
from schemas import DeadLetter, ErrorDetail, HeuristicDone, Limits, Optimized, SwapAudit
from streams import codec


def _doc(day: HeuristicDone) -> dict:
    return json.loads(day.model_dump_json())


def test_valid_day_decodes_to_the_model(seed_day: HeuristicDone) -> None:
    """A valid HeuristicDone round-trips through encode/decode unchanged."""
    assert codec.decode_heuristic_done(codec.encode(seed_day)) == seed_day


def test_not_json_is_an_error(seed_day: HeuristicDone) -> None:
    """Bytes that are not JSON give a json_invalid error."""
    errors = codec.decode_heuristic_done(b"\xff{not json")
    assert isinstance(errors, list)
    assert errors[0].type == "json_invalid"


def test_wrong_types_name_the_field(seed_day: HeuristicDone) -> None:
    """A wrong type is reported with its location."""
    doc = _doc(seed_day)
    doc["drivers"][0]["max_rides"] = "many"
    errors = codec.decode_heuristic_done(json.dumps(doc).encode())
    assert isinstance(errors, list)
    assert ("drivers", 0, "max_rides") in [e.loc for e in errors]


def test_unknown_booking_in_assignments_is_an_error(seed_day: HeuristicDone) -> None:
    """An assignment that references no booking fails the cross-field check."""
    doc = _doc(seed_day)
    doc["assignments"][0]["booking_id"] = "nobody"
    errors = codec.decode_heuristic_done(json.dumps(doc).encode())
    assert isinstance(errors, list)
    assert "unknown booking" in errors[0].msg


def test_nan_coordinates_are_rejected(seed_day: HeuristicDone) -> None:
    """NaN is not a coordinate (pydantic parses the NaN literal, then rejects it)."""
    raw = codec.encode(seed_day).replace(b'"lat":46.1836', b'"lat":NaN', 1)
    assert b"NaN" in raw
    errors = codec.decode_heuristic_done(raw)
    assert isinstance(errors, list)
    assert any(e.loc[-1] == "lat" for e in errors)


def test_size_limit_comes_from_the_limits(seed_day: HeuristicDone) -> None:
    """More bookings than the configured limit is an error naming the limit."""
    errors = codec.decode_heuristic_done(codec.encode(seed_day), Limits(max_bookings=5))
    assert isinstance(errors, list)
    assert "limit 5" in errors[0].msg


def test_missing_value_is_an_error() -> None:
    """A tombstone (no value) is bad input, not a crash."""
    errors = codec.decode_heuristic_done(None)
    assert isinstance(errors, list) and errors[0].type == "missing_value"


def test_dead_letter_carries_original_bytes_and_position() -> None:
    """The dead letter holds the verbatim bytes, the key and the source position."""
    raw, key = b"\x00\x01 not json", b"k-1"
    dl = codec.dead_letter(
        raw, key, [ErrorDetail(msg="bad", type="x")], topic="in", partition=2, offset=41
    )
    back = DeadLetter.model_validate_json(codec.encode(dl))
    assert base64.b64decode(back.value_b64) == raw
    assert base64.b64decode(back.key_b64 or "") == key
    assert (back.source_topic, back.source_partition, back.source_offset) == ("in", 2, 41)
    assert back.event_id == "dlq:in:2:41"


def test_outcome_records_put_audits_before_optimized(seed_day: HeuristicDone) -> None:
    """Every record is keyed by dispatch_id; audits come first, the Optimized last."""
    outcome = optimize_event(seed_day, GreedyPolicy())
    records = codec.outcome_records(outcome)
    assert [k for k, _, _ in records] == ["audit"] * len(outcome.audits) + ["optimized"]
    assert {key for _, key, _ in records} == {seed_day.dispatch_id.encode()}
    assert Optimized.model_validate_json(records[-1][2]) == outcome.optimized
    assert SwapAudit.model_validate_json(records[0][2]) == outcome.audits[0]
