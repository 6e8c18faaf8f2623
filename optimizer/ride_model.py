"""The ride model, written once: how a driver's day unfolds, ride after ride.

A driver starts its shift at its start location and serves one booking at a time, in the
problem's service order (pickup window, then id): drive the empty leg to the pickup, wait for
the window to open if early, board (`service` minutes), ride to the drop-off, then on to the
next pickup. Lateness is minutes picked up after the window closed; deadhead is the empty legs'
kilometres (no return leg).

Everything that needs those times calls this module: route schedules
(`feasibility.schedule_route`), the insertion arithmetic of the candidate mask
(`routes.RouteArrays`), the solo-feasibility mask (`moves.solo_feasible`), the upstream
generator (`generate.greedy_upstream`) and the exact solver's constraints (`exact`). The step
functions take numpy arrays or scalars alike, so a vectorised caller and a ride-by-ride loop
do the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from optimizer.problem import FloatArray, Problem

__all__ = [
    "RouteTimes",
    "dropoff_at",
    "duration",
    "late_minutes",
    "leg",
    "pickup_at",
    "route_times",
]

Index = Any
"""A booking or driver index, or an integer array of them (numpy broadcasting applies)."""


def leg(problem: Problem, driver: Index, prev: Index, booking: Index) -> tuple[Any, Any]:
    """The empty leg to `booking`'s pickup, in minutes and km: from the drop-off of `prev`, or
    from `driver`'s start where `prev < 0`."""
    tt = problem.travel
    first = np.asarray(prev) < 0
    safe = np.where(first, 0, prev)
    minutes = np.where(
        first, tt.start_to_pickup[driver, booking], tt.dropoff_to_pickup[safe, booking]
    )
    km = np.where(
        first, tt.start_to_pickup_km[driver, booking], tt.dropoff_to_pickup_km[safe, booking]
    )
    return minutes, km


def pickup_at(problem: Problem, arrive: Any, booking: Index) -> Any:
    """Pickup time of `booking` when the driver arrives at `arrive`: not before its window."""
    return np.maximum(arrive, problem.earliest[booking])


def duration(problem: Problem, booking: Index | None = None) -> Any:
    """Minutes from pickup to drop-off: boarding plus the loaded ride."""
    total: FloatArray = problem.service + problem.travel.ride
    return total if booking is None else total[booking]


def dropoff_at(problem: Problem, pickup: Any, booking: Index) -> Any:
    """Drop-off time of `booking` picked up at `pickup`."""
    return pickup + duration(problem, booking)


def late_minutes(problem: Problem, pickup: Any, booking: Index) -> Any:
    """Minutes after `booking`'s window closed (0 when on time)."""
    return np.maximum(pickup - problem.latest[booking], 0.0)


@dataclass(frozen=True, slots=True)
class RouteTimes:
    """One driver's route, ride by ride: times in minutes, legs in minutes and km."""

    pickup: npt.NDArray[np.float64]
    dropoff: npt.NDArray[np.float64]
    leg_minutes: npt.NDArray[np.float64]
    leg_km: npt.NDArray[np.float64]

    @property
    def end(self) -> float:
        return float(self.dropoff[-1]) if len(self.dropoff) else float("nan")


def route_times(problem: Problem, driver: int, bookings: Sequence[int]) -> RouteTimes:
    """Times of `bookings` (in service order) served by `driver` from its shift start.

    Each ride's legs are independent of the times (they depend on the previous ride only), so
    they are computed at once; the times follow the one recursion `pickup = max(free + leg,
    earliest)`, `free = dropoff`.
    """
    m = len(bookings)
    rides = np.fromiter(bookings, dtype=np.int64, count=m)
    prev = np.empty(m, dtype=np.int64)
    if m:
        prev[0] = -1
        prev[1:] = rides[:-1]
    minutes, km = leg(problem, driver, prev, rides)
    minutes = np.asarray(minutes, dtype=float)
    earliest = problem.earliest[rides].tolist()
    dur = duration(problem, rides).tolist()
    pickups = [0.0] * m
    dropoffs = [0.0] * m
    free = float(problem.shift_start[driver])
    for i, (lg, e, d) in enumerate(zip(minutes.tolist(), earliest, dur, strict=True)):
        # `pickup_at` and `dropoff_at`, on Python floats (this loop is the pass's hot path).
        pick = max(free + lg, e)
        pickups[i] = pick
        free = dropoffs[i] = pick + d
    return RouteTimes(
        pickup=np.asarray(pickups, dtype=float),
        dropoff=np.asarray(dropoffs, dtype=float),
        leg_minutes=minutes,
        leg_km=np.asarray(km, dtype=float),
    )
