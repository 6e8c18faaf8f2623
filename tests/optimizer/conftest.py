"""Builders for tiny hand-made days, in minutes after 06:00 on 2026-01-05 (UTC)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import HeuristicDone

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
GENEVA = (46.2044, 6.1432)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def driver(
    driver_id: str,
    start: float = 360,
    end: float = 840,
    caps: tuple[str, ...] = (),
    where: tuple[float, float] = GENEVA,
    max_rides: int | None = None,
) -> dict[str, Any]:
    return {
        "driver_id": driver_id,
        "shift_start": at(start),
        "shift_end": at(end),
        "start": {"lat": where[0], "lon": where[1]},
        "capabilities": list(caps),
        "max_rides": max_rides,
    }


def booking(
    booking_id: str,
    earliest: float,
    latest: float | None = None,
    *,
    km_east: float = 1.0,
    req: tuple[str, ...] = (),
    priority: int = 0,
    locked: bool = False,
    service: float = 5.0,
) -> dict[str, Any]:
    # ~1.3 road-km per 0.0117 deg of longitude at this latitude: rides of a few minutes
    lon2 = GENEVA[1] + km_east * 0.0130
    return {
        "booking_id": booking_id,
        "pickup": {"lat": GENEVA[0], "lon": GENEVA[1]},
        "dropoff": {"lat": GENEVA[0], "lon": lon2},
        "pickup_earliest": at(earliest),
        "pickup_latest": at(latest if latest is not None else earliest + 20),
        "service_minutes": service,
        "priority": priority,
        "requirements": list(req),
        "locked": locked,
    }


def day(
    drivers: list[dict[str, Any]],
    bookings: list[dict[str, Any]],
    assignments: dict[str, str],
) -> HeuristicDone:
    return HeuristicDone.model_validate(
        {
            "event_id": "evt-test",
            "dispatch_id": "dsp-test",
            "company_id": "test",
            "service_date": "2026-01-05",
            "produced_at": at(300),
            "drivers": drivers,
            "bookings": bookings,
            "assignments": [{"booking_id": b, "driver_id": d} for b, d in assignments.items()],
        }
    )


@pytest.fixture
def make_day() -> Callable[..., HeuristicDone]:
    """`make_day(drivers, bookings, {booking: driver})` from `driver(...)`/`booking(...)` dicts."""
    return day


@pytest.fixture
def cpsat_solves(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The deterministic time (CP-SAT's machine-independent work units) of every CP-SAT solve
    the test runs, in order."""
    from ortools.sat.python import cp_model

    spent: list[float] = []
    solve = cp_model.CpSolver.solve

    def recording(self: cp_model.CpSolver, *args: object, **kwargs: object) -> object:
        status = solve(self, *args, **kwargs)  # type: ignore[arg-type]
        spent.append(self.deterministic_time)
        return status

    monkeypatch.setattr(cp_model.CpSolver, "solve", recording)
    return spent


def proven_minimum(
    problem: Any, upstream: Any, share: float | None, free_time_limit_s: float = 60
) -> tuple[Any, Any, float | None]:
    """(the deadhead-only minimum, the minimum under a lateness cap of `share` x its
    lateness (itself when `share` is None), the cap): both proven by CP-SAT without the
    Lagrangian bound, the reference a bound must never pass."""
    from optimizer.exact import solve_lexicographic

    free = solve_lexicographic(
        problem, upstream, time_limit_s=free_time_limit_s, workers=1, lagrangian=False
    )
    assert free.proven_optimal and free.lateness_minutes is not None
    if share is None:
        return free, free, None
    cap = share * free.lateness_minutes
    exact = solve_lexicographic(
        problem,
        upstream,
        gap=free.gap,
        time_limit_s=60,
        workers=1,
        lagrangian=False,
        max_lateness_minutes=cap,
    )
    assert exact.status == "OPTIMAL" and exact.deadhead_km is not None, exact.status
    return free, exact, cap
