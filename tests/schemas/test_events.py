"""The wire contract: validation that names the field, limits, generated JSON Schema files."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

import schemas
from schemas import HeuristicDone, Limits, render_json_schemas
from schemas.jsonschema import JSON_DIR


def _day(**changes: object) -> dict[str, object]:
    t0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    doc: dict[str, object] = {
        "event_id": "e1",
        "dispatch_id": "d1",
        "company_id": "c1",
        "service_date": "2026-01-05",
        "mode": "auto",
        "produced_at": t0.isoformat(),
        "drivers": [
            {
                "driver_id": "k1",
                "shift_start": t0.isoformat(),
                "shift_end": (t0 + timedelta(hours=8)).isoformat(),
                "start": {"lat": 46.2, "lon": 6.1},
            }
        ],
        "bookings": [
            {
                "booking_id": "b1",
                "pickup": {"lat": 46.2, "lon": 6.1},
                "dropoff": {"lat": 46.21, "lon": 6.12},
                "pickup_earliest": (t0 + timedelta(hours=1)).isoformat(),
                "pickup_latest": (t0 + timedelta(hours=1, minutes=20)).isoformat(),
            }
        ],
        "assignments": [{"booking_id": "b1", "driver_id": "k1"}],
    }
    doc.update(changes)
    return doc


def _error_text(doc: dict[str, object], limits: Limits | None = None) -> str:
    with pytest.raises(ValidationError) as info:
        HeuristicDone.model_validate_json(json.dumps(doc), context=(limits or Limits()).context())
    return str(info.value)


def test_valid_day_parses() -> None:
    """A well-formed day validates into a frozen model."""
    day = HeuristicDone.model_validate_json(json.dumps(_day()))
    assert day.service_date == date(2026, 1, 5)
    with pytest.raises(ValidationError):
        day.dispatch_id = "x"  # type: ignore[misc]


def test_unknown_booking_in_assignments_names_the_field() -> None:
    """An assignment to an unknown booking says which assignment is wrong."""
    text = _error_text(_day(assignments=[{"booking_id": "nope", "driver_id": "k1"}]))
    assert "assignments[0].booking_id" in text and "nope" in text


def test_unknown_driver_in_assignments_names_the_field() -> None:
    """An assignment to an unknown driver is rejected with the driver field named."""
    text = _error_text(_day(assignments=[{"booking_id": "b1", "driver_id": "zz"}]))
    assert "assignments[0].driver_id" in text


def test_booking_assigned_twice_is_rejected() -> None:
    """A booking may be assigned at most once."""
    twice = [{"booking_id": "b1", "driver_id": "k1"}] * 2
    assert "assigned twice" in _error_text(_day(assignments=twice))


def test_duplicate_ids_are_rejected() -> None:
    """Booking and driver ids are unique."""
    doc = _day()
    doc["bookings"] = list(doc["bookings"]) * 2  # type: ignore[call-overload]
    assert "duplicate booking_id" in _error_text(doc)


def test_window_must_be_ordered() -> None:
    """pickup_latest before pickup_earliest is an error naming the booking."""
    doc = _day()
    b = dict(doc["bookings"][0])  # type: ignore[index]
    b["pickup_latest"], b["pickup_earliest"] = b["pickup_earliest"], b["pickup_latest"]
    doc["bookings"] = [b]
    text = _error_text(doc)
    assert "bookings.0" in text and "pickup_latest" in text


def test_coordinates_in_range_and_finite() -> None:
    """Latitudes beyond 90 and NaN coordinates are rejected with their location."""
    doc = _day()
    d = dict(doc["drivers"][0])  # type: ignore[index]
    d["start"] = {"lat": 91, "lon": 6.1}
    doc["drivers"] = [d]
    assert "drivers.0.start.lat" in _error_text(doc)
    raw = json.dumps(_day()).replace('"lat": 46.21', '"lat": NaN')
    with pytest.raises(ValidationError) as info:
        HeuristicDone.model_validate_json(raw)
    assert "bookings" in str(info.value)


def test_size_limit_is_configurable() -> None:
    """More bookings than the limit is an error stating the limit."""
    assert "too many bookings: 1 > limit 0" in _error_text(_day(), Limits(max_bookings=0))
    assert "too many drivers" in _error_text(_day(), Limits(max_drivers=0))


def test_unknown_fields_are_rejected() -> None:
    """A typo in a field name upstream is an error, not silently ignored."""
    assert "extra_field" in _error_text(_day(extra_field=1))


def test_travel_matrix_shape_is_checked() -> None:
    """A matrix must be square over driver starts + pickups + dropoffs."""
    assert "travel_time_matrix" in _error_text(_day(travel_time_matrix=[[0.0]]))


def test_json_schema_files_are_current() -> None:
    """The checked-in JSON Schemas equal the models' (run `python -m schemas.jsonschema`)."""
    for name, text in render_json_schemas().items():
        path = JSON_DIR / name
        assert path.exists(), f"missing {path}"
        assert path.read_text() == text, f"{path} is stale: run python -m schemas.jsonschema"


def test_public_api_is_exact() -> None:
    """`schemas.__all__` is sorted (isort-style, as ruff keeps it) and lists the public names."""
    assert schemas.__all__ == sorted(schemas.__all__, key=lambda n: (not n.isupper(), n))
    public = {n for n in vars(schemas) if not n.startswith("_")} - {
        "asyncapi",
        "events",
        "jsonschema",
        "results",
    }
    assert set(schemas.__all__) == public
