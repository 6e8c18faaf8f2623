"""The window and shift sanity checks are exact at their ends, in any UTC offset."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from pydantic import ValidationError

from optimizer.seed import seed_day
from schemas import HeuristicDone, Limits

_US = timedelta(microseconds=1)


def _reason(day: HeuristicDone, limits: Limits) -> str | None:
    try:
        HeuristicDone.model_validate_json(day.model_dump_json(), context=limits.context())
    except ValidationError as exc:
        return str(exc.errors()[0]["type"])
    return None


def _shifted(day: HeuristicDone, start: datetime) -> HeuristicDone:
    """`day` with its first booking's window opening at `start` (and closing at it too)."""
    b = day.bookings[0].model_copy(update={"pickup_earliest": start, "pickup_latest": start})
    return day.model_copy(update={"bookings": (b, *day.bookings[1:])})


@pytest.mark.parametrize("hours", [-12, -5, 0, 1, 14])
@pytest.mark.parametrize("days", [0.5, 2.0])
def test_window_ends_are_exact_to_the_microsecond(hours: int, days: float) -> None:
    """A pickup exactly at either end of the allowed range passes, one microsecond outside
    does not, whatever offset the datetime carries."""
    day = seed_day()
    limits = Limits(window_days=days)
    tz = timezone(timedelta(hours=hours))
    first = datetime.combine(day.service_date, time.min, tzinfo=UTC) - timedelta(days=days)
    last = datetime.combine(day.service_date, time.max, tzinfo=UTC) + timedelta(days=days)
    for at, ok in ((first, True), (first - _US, False), (last, True), (last + _US, False)):
        local = at.astimezone(tz)
        assert _reason(_shifted(day, local), limits) == (None if ok else "window_out_of_range")
        inside = (first + _US) if at == first - _US else (last - _US)
        if not ok:  # ... and one microsecond back inside passes again
            assert _reason(_shifted(day, inside.astimezone(tz)), limits) is None
