"""The one place where events (the `schemas` wire contract) meet the domain, both ways.

Decoding: `problem_from_event` (a `HeuristicDone` becomes a `Problem` and the upstream
assignment vector), `assignment_vector` (published `Assignment`s as a vector),
`moves_of` (`SwapAudit`s back into `Move`s, for replay). Encoding: `metrics`, `schedules`,
`assignments`, `swap_audit`, `counts_metrics`. And the keys an index needs of any event
(`event_keys`: which bookings and drivers it touches).

The agent (through `optimizer.dispatch`), the audit replay, the dataset writer and the audit
store all go through this module; nothing else translates ids to indices or back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

import numpy as np

from optimizer.feasibility import RouteSchedule
from optimizer.moves import Move, Step
from optimizer.objective import Evaluation, count_gap, count_sq_dev
from optimizer.problem import IntArray, Problem, Rules
from optimizer.swap_pass import CheckedMove
from optimizer.travel import TravelModel, TravelTimeModel, travel_times
from schemas import (
    Assignment,
    DriverSchedule,
    HeuristicDone,
    Metrics,
    MoveStep,
    Optimized,
    SwapAudit,
)

__all__ = [
    "AuditMemo",
    "EventKeys",
    "EventKind",
    "assignment_rows",
    "assignment_vector",
    "assignments",
    "counts_metrics",
    "event_keys",
    "metrics",
    "moves_of",
    "problem_from_event",
    "schedule_rows",
    "schedules",
    "swap_audit",
]

EventKind = Literal["heuristic_done", "optimized", "swap_audit"]


# ------------------------------------------------------------------ events -> domain


def problem_from_event(
    event: HeuristicDone,
    *,
    travel_model: TravelTimeModel | None = None,
    rules: Rules | None = None,
) -> tuple[Problem, IntArray]:
    """The problem and the upstream assignment (driver index per booking, -1 unassigned).

    Minute 0 is midnight of the service date in the time zone of the first driver's shift.
    """
    tz = event.drivers[0].shift_start.tzinfo
    origin = datetime.combine(event.service_date, time(0, 0), tzinfo=tz)

    def minutes(dt: datetime) -> float:
        return (dt - origin).total_seconds() / 60.0

    drivers, bookings = event.drivers, event.bookings
    caps = [frozenset(d.capabilities) for d in drivers]
    capable = np.array(
        [[set(b.requirements) <= c for c in caps] for b in bookings], dtype=bool
    ).reshape(len(bookings), len(drivers))
    earliest = np.array([minutes(b.pickup_earliest) for b in bookings], dtype=float)
    latest = np.array([minutes(b.pickup_latest) for b in bookings], dtype=float)
    ids = [b.booking_id for b in bookings]
    # The service order: a driver serves its rides by planned pickup window.
    ranked = sorted(range(len(bookings)), key=lambda i: (earliest[i], latest[i], ids[i]))
    order = np.empty(len(bookings), dtype=np.int64)
    order[ranked] = np.arange(len(bookings))
    matrix = (
        np.asarray(event.travel_time_matrix, dtype=float)
        if event.travel_time_matrix is not None
        else None
    )
    travel = travel_times(
        starts=[(d.start.lat, d.start.lon) for d in drivers],
        pickups=[(b.pickup.lat, b.pickup.lon) for b in bookings],
        dropoffs=[(b.dropoff.lat, b.dropoff.lon) for b in bookings],
        matrix_seconds=matrix,
        model=travel_model or TravelModel(),
    )
    problem = Problem(
        driver_ids=tuple(d.driver_id for d in drivers),
        booking_ids=tuple(ids),
        shift_start=np.array([minutes(d.shift_start) for d in drivers], dtype=float),
        shift_end=np.array([minutes(d.shift_end) for d in drivers], dtype=float),
        max_rides=np.array(
            [-1 if d.max_rides is None else d.max_rides for d in drivers], dtype=np.int64
        ),
        earliest=earliest,
        latest=latest,
        service=np.array([b.service_minutes for b in bookings], dtype=float),
        priority=np.array([b.priority for b in bookings], dtype=np.int64),
        locked=np.array([b.locked for b in bookings], dtype=bool),
        capable=capable,
        travel=travel,
        order=order,
        service_rank=np.asarray(ranked, dtype=np.int64),
        rules=rules or Rules(),
        origin=origin,
    )
    return problem, assignment_vector(problem, event.assignments)


def assignment_vector(problem: Problem, pairs: Iterable[Assignment]) -> IntArray:
    """Driver index per booking (-1 unassigned); `KeyError` names an unknown id."""
    drivers = _index(problem.driver_ids)
    bookings = _index(problem.booking_ids)
    vector = [-1] * problem.n_bookings
    for a in pairs:
        vector[bookings[a.booking_id]] = drivers[a.driver_id]
    return np.array(vector, dtype=np.int64)


def moves_of(problem: Problem, audits: Iterable[SwapAudit]) -> list[Move]:
    """The audited moves as domain moves, in the given order (for `swap_pass.replay`).

    `KeyError` names a booking or driver the problem does not know.
    """
    drivers = _index(problem.driver_ids)
    bookings = _index(problem.booking_ids)
    return [
        Move(
            a.kind,
            tuple(
                Step(bookings[s.booking_id], drivers[s.from_driver], drivers[s.to_driver])
                for s in a.steps
            ),
        )
        for a in audits
    ]


@dataclass(frozen=True, slots=True)
class EventKeys:
    """What an index files an event under (the audit store; anyone filtering events)."""

    kind: EventKind
    dispatch_id: str
    event_id: str
    service_date: date | None
    bookings: tuple[str, ...]
    """Bookings the event is about: all of a day's, or the ones a move touches."""
    drivers: tuple[str, ...]
    model_version: str | None = None
    decision: str | None = None
    reason: str | None = None


def event_keys(event: HeuristicDone | Optimized | SwapAudit) -> EventKeys:
    """The index keys of any of the three dispatch events (sorted, unique ids)."""
    if isinstance(event, HeuristicDone):
        return EventKeys(
            "heuristic_done",
            event.dispatch_id,
            event.event_id,
            event.service_date,
            _sorted(b.booking_id for b in event.bookings),
            _sorted(d.driver_id for d in event.drivers),
        )
    if isinstance(event, Optimized):
        return EventKeys(
            "optimized",
            event.dispatch_id,
            event.event_id,
            event.service_date,
            _sorted(a.booking_id for a in event.assignments),
            _sorted(
                [a.driver_id for a in event.assignments]
                + list(event.metrics.before.rides_per_driver)
            ),
            model_version=event.model_version,
            reason=event.status,
        )
    return EventKeys(
        "swap_audit",
        event.dispatch_id,
        event.event_id,
        None,  # an audit does not carry the date: the store takes it from its dispatch
        _sorted(s.booking_id for s in event.steps),
        _sorted([s.from_driver for s in event.steps] + [s.to_driver for s in event.steps]),
        model_version=event.model_version,
        decision=event.decision,
        reason=event.reason,
    )


# ------------------------------------------------------------------ domain -> events


def metrics(problem: Problem, ev: Evaluation) -> Metrics:
    """The reported metrics of an evaluated plan, keyed by driver id."""
    ids = problem.driver_ids
    return Metrics(
        rides_per_driver=dict(zip(ids, ev.counts.tolist(), strict=False)),
        gap=ev.gap,
        count_sq_dev=round(ev.value[1], 6),
        unfairness=round(ev.unfairness, 6),
        workload_minutes={d: round(w, 3) for d, w in zip(ids, ev.workload.tolist(), strict=False)},
        workload_spread_minutes=round(ev.value[2], 3),
        deadhead_km=round(ev.deadhead_km, 3),
        lateness_minutes=round(ev.lateness_minutes, 3),
        violations=ev.violations,
        unassigned=ev.unassigned,
    )


def counts_metrics(event: HeuristicDone) -> Metrics:
    """Ride counts of the upstream plan from the event alone (no travel model, no schedule):
    the last-resort metrics of a fallback that could not even build the problem."""
    counts: dict[str, int] = {d.driver_id: 0 for d in event.drivers}
    for a in event.assignments:
        counts[a.driver_id] += 1
    values = np.array(list(counts.values()), dtype=np.int64)
    sq = count_sq_dev(values)
    return Metrics(
        rides_per_driver=counts,
        gap=count_gap(values),
        count_sq_dev=round(sq, 6),
        unfairness=round(sq**0.5, 6),
        workload_minutes=dict.fromkeys(counts, 0.0),
        workload_spread_minutes=0.0,
        deadhead_km=0.0,
        lateness_minutes=0.0,
        violations=0,
        unassigned=len(event.bookings) - len(event.assignments),
    )


def schedules(problem: Problem, routes: Sequence[RouteSchedule]) -> tuple[DriverSchedule, ...]:
    """Each driver's planned rides with wall-clock pickup and drop-off times."""
    return tuple(DriverSchedule.model_validate(row) for row in schedule_rows(problem, routes))


def schedule_rows(problem: Problem, routes: Sequence[RouteSchedule]) -> list[dict[str, Any]]:
    """`schedules` as plain values for a model to validate: one pydantic call per driver (or per
    `Optimized`) instead of one per ride, the same models and the same JSON."""
    # `ride_model.late_minutes` on Python floats: numpy per scalar costs more than the rest of
    # this function (it runs once per ride of every published dispatch). `Problem.at` inline.
    latest = problem.latest.tolist()
    origin, booking_ids = problem.origin, problem.booking_ids
    if origin is None:
        raise ValueError("problem has no origin time")
    return [
        {
            "driver_id": problem.driver_ids[r.driver],
            "rides": [
                {
                    "booking_id": booking_ids[b],
                    "pickup_at": origin + timedelta(minutes=float(p)),
                    "dropoff_at": origin + timedelta(minutes=float(d)),
                    "late_minutes": round(max(p - latest[b], 0.0), 3),
                }
                for b, p, d in zip(r.bookings, r.pickup_at, r.dropoff_at, strict=False)
            ],
        }
        for r in routes
    ]


def assignments(problem: Problem, assignment: IntArray) -> tuple[Assignment, ...]:
    """The assigned bookings of a vector as `Assignment`s (unassigned ones are left out)."""
    return tuple(Assignment.model_validate(row) for row in assignment_rows(problem, assignment))


def assignment_rows(problem: Problem, assignment: IntArray) -> list[dict[str, str]]:
    """`assignments` as plain values for a model to validate (see `schedule_rows`)."""
    bookings, drivers = problem.booking_ids, problem.driver_ids
    return [
        {"booking_id": bookings[b], "driver_id": drivers[k]}
        for b, k in enumerate(assignment.tolist())
        if k >= 0
    ]


def swap_audit(
    event_id: str,
    event: HeuristicDone,
    problem: Problem,
    checked: CheckedMove,
    model_version: str,
    at: datetime,
    memo: AuditMemo | None = None,
) -> SwapAudit:
    """The audit event of one validated candidate (`event_id` is chosen by the caller).

    `memo`: one per dispatch, shared by its audits (the same steps and objective vectors recur
    from check to check; each is built once, the same values)."""
    d, b, c = problem.driver_ids, problem.booking_ids, checked
    memo = AuditMemo() if memo is None else memo
    steps = []
    for s in c.move.steps:
        step = memo.steps.get(s)
        if step is None:
            step = memo.steps[s] = MoveStep(
                booking_id=b[s.booking], from_driver=d[s.from_driver], to_driver=d[s.to_driver]
            )
        steps.append(step)
    return SwapAudit(
        event_id=event_id,
        dispatch_id=event.dispatch_id,
        source_event_id=event.event_id,
        sequence=c.sequence,
        kind=c.move.kind,
        steps=tuple(steps),
        score=c.score if math.isfinite(c.score) else None,
        objective_before=memo.rounded(c.value_before),
        objective_after=None if c.value_after is None else memo.rounded(c.value_after),
        gap_before=int(c.value_before[0]),
        gap_after=None if c.value_after is None else int(c.value_after[0]),
        delta=None if c.gain is None else round(c.gain, 6),
        decision=c.decision,
        reason=c.reason,
        detail=c.detail,
        model_version=model_version,
        at=at,
    )


@dataclass(slots=True)
class AuditMemo:
    """What `swap_audit` builds once per dispatch: the wire form of each step, and each
    objective vector rounded (keyed by the vector object itself: equal floats may differ in
    sign, 0.0 and -0.0, which the wire keeps)."""

    steps: dict[Step, MoveStep] = field(default_factory=dict)
    vectors: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)

    def rounded(self, value: tuple[float, ...]) -> tuple[float, ...]:
        hit = self.vectors.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        out = tuple([round(v, 6) for v in value])
        self.vectors[id(value)] = (value, out)  # the vector is kept: its id is not reused
        return out


def _index(ids: Sequence[str]) -> dict[str, int]:
    return {x: i for i, x in enumerate(ids)}


def _sorted(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(ids)))
