"""The hard constraints, one named function per constraint, and the route schedules.

The times come from the ride model (`optimizer.ride_model`, written once); this module checks
them against the constraints.

Every constraint function returns a machine-readable reason code when it rejects, else None.
A *violation* is a `(reason, subject index)` pair; an upstream plan may already contain some,
and the search rule is that no move may add one (see `new_violations`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from optimizer.insertion_grid import kernel_tables
from optimizer.kernels import compiled
from optimizer.problem import FloatArray, IntArray, Problem
from optimizer.ride_model import pairwise_sum, ride_by_ride, tables

Reason = Literal["time_window", "shift", "capability", "locked", "priority", "driver_limit"]
Violation = tuple[Reason, int]
"""A broken hard constraint: the reason and the booking (or, for shift/driver_limit, driver)."""


# ------------------------------------------------------------------ one function per constraint


def check_capability(problem: Problem, booking: int, driver: int) -> Reason | None:
    """The driver must have every capability the booking requires (e.g. `wheelchair`)."""
    return None if problem.capable[booking, driver] else "capability"


def check_locked(problem: Problem, booking: int, from_driver: int, to_driver: int) -> Reason | None:
    """A locked booking stays with its upstream driver."""
    if from_driver != to_driver and problem.locked[booking]:
        return "locked"
    return None


def check_time_window(problem: Problem, booking: int, pickup_at: float) -> Reason | None:
    """A normal booking's pickup may be at most the tolerance after its window closes."""
    if problem.priority[booking] >= problem.rules.high_priority:
        return None  # judged by check_priority, with no tolerance
    if pickup_at > problem.latest[booking] + problem.rules.late_tolerance_minutes + _EPS:
        return "time_window"
    return None


def check_priority(problem: Problem, booking: int, pickup_at: float) -> Reason | None:
    """A high-priority booking may not be picked up after its window closes."""
    if problem.priority[booking] >= problem.rules.high_priority and (
        pickup_at > problem.latest[booking] + _EPS
    ):
        return "priority"
    return None


def check_shift(problem: Problem, driver: int, end_at: float) -> Reason | None:
    """A driver's last drop-off must be done by the end of its shift."""
    return "shift" if end_at > problem.shift_end[driver] + _EPS else None


def check_driver_limit(problem: Problem, driver: int, rides: int) -> Reason | None:
    """A driver with a ride cap takes no more rides than the cap."""
    cap = int(problem.max_rides[driver])
    return "driver_limit" if 0 <= cap < rides else None


_EPS = 1e-6


# ------------------------------------------------------------------ route schedule


@dataclass(frozen=True, slots=True)
class RouteSchedule:
    """One driver's planned day: rides in service order with times, and its aggregates."""

    driver: int
    bookings: tuple[int, ...]
    pickup_at: tuple[float, ...]
    dropoff_at: tuple[float, ...]
    workload_minutes: float  # driving (empty and loaded) + boarding; waiting excluded
    deadhead_km: float
    lateness_minutes: float  # sum of minutes after each window closed
    violations: frozenset[Violation]

    @property
    def rides(self) -> int:
        return len(self.bookings)


def service_sorted(problem: Problem, bookings: Iterable[int]) -> tuple[int, ...]:
    """The bookings in the order a driver serves them."""
    order = problem.order
    return tuple(sorted(bookings, key=lambda b: order[b]))


def schedule_route(problem: Problem, driver: int, bookings: Sequence[int]) -> RouteSchedule:
    """Plan `bookings` (already in service order) for `driver` and check every constraint.

    The times come from the ride model (`ride_model.ride_by_ride`); this adds the checks and
    the aggregates. The per-booking checks are `check_capability`, `check_time_window` and
    `check_priority` applied to every ride, read from the problem's `ride_model.tables` (the
    same comparisons on Python floats; `window_limits` says how).
    """
    if compiled is not None:
        return _schedule_compiled(problem, driver, bookings)
    t = tables(problem)
    pickups, dropoffs, leg_minutes, leg_km = ride_by_ride(problem, driver, bookings)
    violations: set[Violation] = set()
    capable, limit, latest, dur = t.capable, t.window_limit, t.latest, t.duration
    late = [0.0] * len(bookings)
    for i, b in enumerate(bookings):
        pickup = pickups[i]
        if not capable[b][driver]:
            violations.add(("capability", b))
        if pickup > limit[b]:
            violations.add(("priority" if t.high_priority[b] else "time_window", b))
        late[i] = max(pickup - latest[b], 0.0)  # `ride_model.late_minutes`
    if bookings and dropoffs[-1] > t.shift_end[driver] + _EPS:  # `check_shift`
        violations.add(("shift", driver))
    if (reason := check_driver_limit(problem, driver, len(bookings))) is not None:
        violations.add((reason, driver))
    return RouteSchedule(
        driver=driver,
        bookings=tuple(bookings),
        pickup_at=tuple(pickups),
        dropoff_at=tuple(dropoffs),
        workload_minutes=pairwise_sum(leg_minutes) + pairwise_sum([dur[b] for b in bookings]),
        deadhead_km=pairwise_sum(leg_km),
        lateness_minutes=pairwise_sum(late),
        violations=frozenset(violations),
    )


def _schedule_compiled(problem: Problem, driver: int, bookings: Sequence[int]) -> RouteSchedule:
    """`schedule_route` with its loop and sums in `optimizer/_kernels.c` (`schedule`: the same
    arithmetic; `tests/optimizer/test_kernels.py`)."""
    assert compiled is not None
    t, c = tables(problem), kernel_tables(problem)
    pickups, dropoffs, workload, deadhead, lateness, incapable, too_late = compiled.schedule(
        driver, bookings, t.shift_start[driver], problem.n_bookings, problem.n_drivers,
        c.earliest, c.latest, c.duration, c.window_limit, c.capable, c.minutes, c.km,
    )  # fmt: skip
    # Most routes break nothing: the set is built only when something is found.
    violations: set[Violation] | frozenset[Violation] = _NONE
    if incapable or too_late:
        violations = {("capability", b) for b in incapable}
        for b in too_late:
            violations.add(("priority" if t.high_priority[b] else "time_window", b))
    if bookings and dropoffs[-1] > t.shift_end[driver] + _EPS:  # `check_shift`
        violations = {*violations, ("shift", driver)}
    if 0 <= t.max_rides[driver] < len(bookings):  # `check_driver_limit`, from the tables
        violations = {*violations, ("driver_limit", driver)}
    return RouteSchedule(
        driver=driver,
        bookings=tuple(bookings),
        pickup_at=pickups,
        dropoff_at=dropoffs,
        workload_minutes=workload,
        deadhead_km=deadhead,
        lateness_minutes=lateness,
        violations=violations if violations is _NONE else frozenset(violations),
    )


_NONE: frozenset[Violation] = frozenset()


def window_limits(problem: Problem) -> list[float]:
    """Per booking, the pickup time after which `check_time_window` (normal bookings) or
    `check_priority` (high priority) reject it: the same sums, so the same comparisons."""
    tol = problem.rules.late_tolerance_minutes
    high = problem.priority >= problem.rules.high_priority
    return [
        lt + _EPS if hp else lt + tol + _EPS
        for lt, hp in zip(problem.latest.tolist(), high.tolist(), strict=True)
    ]


def lateness_caps(problem: Problem, schedules: Sequence[RouteSchedule]) -> FloatArray:
    """Per booking, the most minutes late any later plan may pick it up.

    The tolerance (0 for high priority), or the booking's lateness in `schedules` (the input
    plan) when that is more: a ride the upstream plan already made late may stay as late, never
    later. Unassigned bookings keep the tolerance.
    """
    cap = problem.tolerance.tolist()
    latest = tables(problem).latest
    for s in schedules:
        for b, pickup in zip(s.bookings, s.pickup_at, strict=True):
            late = max(pickup - latest[b], 0.0)  # `ride_model.late_minutes`
            if late > cap[b]:
                cap[b] = late
    return np.asarray(cap, dtype=float)


def deadlines(problem: Problem, schedules: Sequence[RouteSchedule]) -> FloatArray:
    """Latest allowed pickup per booking given the input plan (see `lateness_caps`)."""
    out: FloatArray = problem.latest + lateness_caps(problem, schedules)
    return out


def routes_of(problem: Problem, assignment: IntArray) -> list[tuple[int, ...]]:
    """Each driver's bookings in service order."""
    routes: list[list[int]] = [[] for _ in range(problem.n_drivers)]
    drivers = assignment.tolist()
    for b in problem.service_rank.tolist():
        k = drivers[b]
        if k >= 0:
            routes[k].append(b)
    return [tuple(r) for r in routes]


def schedule_all(problem: Problem, assignment: IntArray) -> list[RouteSchedule]:
    """Every driver's schedule under `assignment`."""
    return [schedule_route(problem, k, r) for k, r in enumerate(routes_of(problem, assignment))]


def violations(problem: Problem, assignment: IntArray) -> frozenset[Violation]:
    """All hard-constraint violations of a complete plan."""
    out: set[Violation] = set()
    for s in schedule_all(problem, assignment):
        out |= s.violations
    return frozenset(out)


def new_violations(
    before: frozenset[Violation], after: frozenset[Violation]
) -> frozenset[Violation]:
    """Violations a change would add; an accepted move must add none."""
    return after - before


def later_than_allowed(problem: Problem, before: IntArray, after: IntArray) -> frozenset[int]:
    """Bookings `after` picks up later than `before` allows (see `lateness_caps`)."""
    deadline = deadlines(problem, schedule_all(problem, before))
    out: set[int] = set()
    for s in schedule_all(problem, after):
        for b, pickup in zip(s.bookings, s.pickup_at, strict=True):
            if pickup > deadline[b] + _EPS:
                out.add(b)
    return frozenset(out)


def is_feasible_change(
    problem: Problem, before: IntArray, after: IntArray
) -> tuple[bool, frozenset[Violation]]:
    """Whether `after` keeps every hard constraint `before` kept, made no booking later than
    allowed (`later_than_allowed`), and left locked bookings with their driver."""
    added = set(new_violations(violations(problem, before), violations(problem, after)))
    for late in later_than_allowed(problem, before, after):
        added.add(("priority" if problem.high_priority[late] else "time_window", late))
    moved = np.nonzero(before != after)[0]
    for b in moved:
        if check_locked(problem, int(b), int(before[b]), int(after[b])) is not None:
            added.add(("locked", int(b)))
    return not added, frozenset(added)
