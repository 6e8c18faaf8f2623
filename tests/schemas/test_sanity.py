"""Input sanity: well-formed but absurd days are refused with a named reason (error type)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from optimizer.generate import generate_day
from optimizer.seed import seed_day
from schemas import HeuristicDone, Limits, Location


def _reason(day: HeuristicDone, limits: Limits | None = None) -> str | None:
    try:
        HeuristicDone.model_validate_json(
            day.model_dump_json(), context=(limits or Limits()).context()
        )
    except ValidationError as exc:
        return str(exc.errors()[0]["type"])
    return None


def _with_booking(day: HeuristicDone, **changes: object) -> HeuristicDone:
    b = day.bookings[0].model_copy(update=changes)
    return day.model_copy(update={"bookings": (b, *day.bookings[1:])})


def _year(at: datetime, year: int) -> datetime:
    return at.replace(year=year)


def test_generated_and_seed_days_are_sane() -> None:
    """The days the project itself makes pass, small to the largest size."""
    assert _reason(seed_day()) is None
    for n, k in [(10, 3), (300, 40), (2000, 300)]:
        assert _reason(generate_day(n, k, seed=n)) is None


@pytest.mark.parametrize("year", [1, 9999])
def test_windows_in_absurd_years_are_window_out_of_range(year: int) -> None:
    """A pickup window in year 0001 or 9999 of a day dated today is refused."""
    d = seed_day()
    b = d.bookings[0]
    bad = _with_booking(
        d,
        pickup_earliest=_year(b.pickup_earliest, year),
        pickup_latest=_year(b.pickup_latest, year),
    )
    assert _reason(bad) == "window_out_of_range"


def test_window_slack_is_the_limit_setting() -> None:
    """Three days after the service date: refused at +-2 days, accepted at +-4."""
    d = seed_day()
    b = d.bookings[0]
    later = _with_booking(
        d,
        pickup_earliest=b.pickup_earliest + timedelta(days=3),
        pickup_latest=b.pickup_latest + timedelta(days=3),
    )
    assert _reason(later, Limits(window_days=2)) == "window_out_of_range"
    assert _reason(later, Limits(window_days=4)) is None


def test_shift_in_another_year_is_shift_out_of_range() -> None:
    """A driver's shift far from the service date is refused."""
    d = seed_day()
    drv = d.drivers[0]
    bad_driver = drv.model_copy(
        update={
            "shift_start": _year(drv.shift_start, 9999),
            "shift_end": _year(drv.shift_end, 9999),
        }
    )
    bad = d.model_copy(update={"drivers": (bad_driver, *d.drivers[1:])})
    assert _reason(bad) == "shift_out_of_range"


def test_a_place_far_from_the_rest_is_coordinates_too_spread() -> None:
    """One dropoff on another continent (in range as lat/lon, absurd for a day)."""
    d = seed_day()
    assert _reason(_with_booking(d, dropoff=Location(lat=-33.9, lon=151.2))) == (
        "coordinates_too_spread"
    )
    near = Location(lat=d.bookings[0].pickup.lat + 0.5, lon=d.bookings[0].pickup.lon)
    assert _reason(_with_booking(d, dropoff=near)) is None  # 55 km: a normal ride
    assert _reason(_with_booking(d, dropoff=near), Limits(max_radius_km=20)) == (
        "coordinates_too_spread"
    )


def test_coordinates_out_of_range_are_refused() -> None:
    """Latitude beyond 90 degrees never validates."""
    doc = seed_day().model_dump(mode="json")
    doc["bookings"][0]["pickup"]["lat"] = 91.0
    with pytest.raises(ValidationError) as exc:
        HeuristicDone.model_validate(doc)
    assert exc.value.errors()[0]["type"] == "less_than_equal"


def test_an_empty_day_is_empty_day() -> None:
    """No bookings: nothing to dispatch, refused by name."""
    assert _reason(seed_day().model_copy(update={"bookings": (), "assignments": ()})) == "empty_day"


@pytest.mark.parametrize("year", [1, 9999])
def test_a_whole_day_in_an_absurd_year_is_service_date_out_of_range(year: int) -> None:
    """Service date, windows and shifts all moved to year 0001 or 9999 (consistent with each
    other, absurd for a dispatch produced today): refused."""
    d = seed_day()
    bookings = tuple(
        b.model_copy(
            update={
                "pickup_earliest": _year(b.pickup_earliest, year),
                "pickup_latest": _year(b.pickup_latest, year),
            }
        )
        for b in d.bookings
    )
    drivers = tuple(
        v.model_copy(
            update={
                "shift_start": _year(v.shift_start, year),
                "shift_end": _year(v.shift_end, year),
            }
        )
        for v in d.drivers
    )
    moved = d.model_copy(
        update={
            "service_date": d.service_date.replace(year=year),
            "bookings": bookings,
            "drivers": drivers,
        }
    )
    assert _reason(moved) == "service_date_out_of_range"
    # a day published two years ahead is as suspicious
    later = d.model_copy(update={"produced_at": d.produced_at.replace(year=d.produced_at.year - 2)})
    assert _reason(later) == "service_date_out_of_range"
