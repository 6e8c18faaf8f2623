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
    "RideTables",
    "RouteTimes",
    "dropoff_at",
    "duration",
    "late_minutes",
    "leg",
    "leg_km",
    "leg_minutes",
    "leg_tables",
    "pairwise_sum",
    "pickup_at",
    "ride_by_ride",
    "route_times",
    "tables",
]

Index = Any
"""A booking or driver index, or an integer array of them (numpy broadcasting applies)."""


def leg(problem: Problem, driver: Index, prev: Index, booking: Index) -> tuple[Any, Any]:
    """The empty leg to `booking`'s pickup, in minutes and km: from the drop-off of `prev`, or
    from `driver`'s start where `prev < 0`."""
    row = _from_row(problem, driver, prev)
    minutes, km = leg_tables(problem)
    return minutes[row, booking], km[row, booking]


def leg_minutes(problem: Problem, driver: Index, prev: Index, booking: Index) -> Any:
    """`leg(...)[0]` alone."""
    return leg_tables(problem)[0][_from_row(problem, driver, prev), booking]


def leg_km(problem: Problem, driver: Index, prev: Index, booking: Index) -> Any:
    """`leg(...)[1]` alone."""
    return leg_tables(problem)[1][_from_row(problem, driver, prev), booking]


def _from_row(problem: Problem, driver: Index, prev: Index) -> Any:
    """The row of `leg_tables` a leg starts from: `prev`'s drop-off, or the driver's start."""
    return np.where(np.asarray(prev) < 0, problem.n_bookings + np.asarray(driver), prev)


def leg_tables(problem: Problem) -> tuple[FloatArray, FloatArray]:
    """(N + K, N) minutes and km from every drop-off (rows 0..N-1), then every driver's start
    (rows N..N+K-1), to every pickup: a leg is one lookup (copies of the travel matrices, kept
    on the problem)."""
    return problem.memo("leg_tables", _build_leg_tables)


def _build_leg_tables(problem: Problem) -> tuple[FloatArray, FloatArray]:
    tt = problem.travel
    minutes = np.concatenate([tt.dropoff_to_pickup, tt.start_to_pickup]).reshape(
        problem.n_bookings + problem.n_drivers, problem.n_bookings
    )
    km = np.concatenate([tt.dropoff_to_pickup_km, tt.start_to_pickup_km]).reshape(minutes.shape)
    return minutes, km


def pickup_at(problem: Problem, arrive: Any, booking: Index) -> Any:
    """Pickup time of `booking` when the driver arrives at `arrive`: not before its window."""
    return np.maximum(arrive, problem.earliest[booking])


def duration(problem: Problem, booking: Index | None = None) -> Any:
    """Minutes from pickup to drop-off: boarding plus the loaded ride."""
    total: FloatArray = problem.memo("duration", _duration)
    return total if booking is None else total[booking]


def _duration(problem: Problem) -> FloatArray:
    out: FloatArray = problem.service + problem.travel.ride
    out.setflags(write=False)
    return out


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
    """Times of `bookings` (in service order) served by `driver` from its shift start, as arrays
    (`ride_by_ride` computes them)."""
    pickups, dropoffs, leg_minutes, leg_km = ride_by_ride(problem, driver, bookings)
    return RouteTimes(
        pickup=np.asarray(pickups, dtype=float),
        dropoff=np.asarray(dropoffs, dtype=float),
        leg_minutes=np.asarray(leg_minutes, dtype=float),
        leg_km=np.asarray(leg_km, dtype=float),
    )


def ride_by_ride(
    problem: Problem, driver: int, bookings: Sequence[int]
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Pickups, drop-offs, empty-leg minutes and km of `bookings` (in service order) served by
    `driver` from its shift start: the one recursion `pickup = max(free + leg, earliest)`,
    `free = dropoff`.

    `leg`, `pickup_at` and `dropoff_at` step by step, on Python floats read from `tables`: the
    swap pass's hot path (numpy's per-call overhead dwarfs a route of a few rides).
    """
    t = tables(problem)
    earliest, dur = t.earliest, t.duration
    to_pickup, to_pickup_km = t.dropoff_to_pickup, t.dropoff_to_pickup_km
    m = len(bookings)
    pickups = [0.0] * m
    dropoffs = [0.0] * m
    minutes = [0.0] * m
    km = [0.0] * m
    free = t.shift_start[driver]
    prev = -1
    for i, b in enumerate(bookings):
        if prev < 0:
            lg, dist = t.start_to_pickup.item(driver, b), t.start_to_pickup_km.item(driver, b)
        else:
            lg, dist = to_pickup.item(prev, b), to_pickup_km.item(prev, b)
        minutes[i], km[i] = lg, dist
        pick = max(free + lg, earliest[b])
        pickups[i] = pick
        free = dropoffs[i] = pick + dur[b]
        prev = b
    return pickups, dropoffs, minutes, km


@dataclass(frozen=True, slots=True)
class RideTables:
    """The problem's numbers as Python floats for ride-by-ride loops (built once per problem,
    `tables`); the travel matrices stay numpy and are read with `.item`."""

    earliest: list[float]
    latest: list[float]
    duration: list[float]
    """`duration(problem)`: boarding plus the loaded ride."""
    shift_start: list[float]
    shift_end: list[float]
    window_limit: list[float]
    """The pickup time after which `check_time_window` / `check_priority` reject: window
    close + tolerance (0 for high priority) + their epsilon, with the same float arithmetic."""
    high_priority: list[bool]
    capable: list[list[bool]]
    max_rides: list[int]
    order: list[int]
    """Each booking's rank in the service order."""
    locked: list[bool]
    start_to_pickup: FloatArray
    start_to_pickup_km: FloatArray
    dropoff_to_pickup: FloatArray
    dropoff_to_pickup_km: FloatArray


def tables(problem: Problem) -> RideTables:
    """The problem's `RideTables` (built on first use, then kept on the problem)."""
    return problem.memo("ride_tables", _build_tables)


def _build_tables(problem: Problem) -> RideTables:
    from optimizer.feasibility import window_limits  # it imports this module

    tt = problem.travel
    return RideTables(
        earliest=problem.earliest.tolist(),
        latest=problem.latest.tolist(),
        duration=duration(problem).tolist(),
        shift_start=problem.shift_start.tolist(),
        shift_end=problem.shift_end.tolist(),
        window_limit=window_limits(problem),
        high_priority=problem.high_priority.tolist(),
        capable=problem.capable.tolist(),
        max_rides=problem.max_rides.tolist(),
        order=problem.order.tolist(),
        locked=problem.locked.tolist(),
        start_to_pickup=tt.start_to_pickup,
        start_to_pickup_km=tt.start_to_pickup_km,
        dropoff_to_pickup=tt.dropoff_to_pickup,
        dropoff_to_pickup_km=tt.dropoff_to_pickup_km,
    )


def pairwise_sum(values: Sequence[float]) -> float:
    """`float(np.sum(values))` of a 1-D float64 array, on Python floats: numpy's pairwise
    summation (8 accumulators per block of up to 128, halves above), so sums taken here equal
    the vectorised ones to the last bit."""
    if len(values) < 8:  # `_pairwise`'s first case, inline (a route of a few rides)
        res = 0.0
        for v in values:
            res += v
        return res + 0.0
    return _pairwise(values, 0, len(values)) + 0.0


def _pairwise(a: Sequence[float], lo: int, n: int) -> float:
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    if n <= 128:
        r0, r1, r2, r3, r4, r5, r6, r7 = a[lo : lo + 8]
        i = 8
        end = n - n % 8
        while i < end:
            j = lo + i
            r0 += a[j]
            r1 += a[j + 1]
            r2 += a[j + 2]
            r3 += a[j + 3]
            r4 += a[j + 4]
            r5 += a[j + 5]
            r6 += a[j + 6]
            r7 += a[j + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise(a, lo, n2) + _pairwise(a, lo + n2, n - n2)
