"""Synthetic patient-transport days around Geneva, with a deliberately unfair upstream plan.

`generate_day` draws a realistic day (drivers on staggered shifts starting from depots or
home, bookings peaking around morning and afternoon hospital appointments, wheelchair
requirements, a few urgent and locked rides) and assigns it with `greedy_upstream`: the kind of
"keep the busy driver busy" heuristic an upstream dispatcher runs. Its plan is feasible under the
ride model of `optimizer.feasibility` but piles rides on a few drivers, which is exactly what
the swap pass exists to fix. Everything is a pure function of its arguments and the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import numpy as np

from optimizer.feasibility import violations
from optimizer.problem import IntArray, Problem
from optimizer.ride_model import dropoff_at, leg, pickup_at
from schemas import Assignment, Booking, Driver, HeuristicDone, Location
from schemas.events import Mode

DEFAULT_SERVICE_DATE = date(2026, 1, 5)
WHEELCHAIR = "wheelchair"
DEFAULT_PILE_MINUTES = 1.0
"""How many deadhead minutes the upstream heuristic trades for one ride already held."""

# The service area: lat 46.15-46.30, lon 6.05-6.25 (canton of Geneva, Swiss side).
_LAT_RANGE = (46.15, 46.30)
_LON_RANGE = (6.05, 6.25)

# Where patients go: the main hospitals and clinics (approximate public addresses).
_HOSPITALS = np.array(
    [
        (46.1935, 6.1490),  # HUG Cluse-Roseraie
        (46.1920, 6.1530),  # HUG Beau-Séjour
        (46.2085, 6.1810),  # Clinique des Grangettes
        (46.2340, 6.0790),  # Hôpital de la Tour, Meyrin
        (46.2130, 6.1550),  # Clinique Générale-Beaulieu
        (46.2000, 6.2000),  # HUG Trois-Chêne
        (46.1960, 6.1420),  # Clinique La Colline
    ]
)
# Where patients live: neighbourhood centres, with the city weighted up.
_HOMES = np.array(
    [
        (46.2044, 6.1432),  # Genève centre
        (46.2044, 6.1432),
        (46.2100, 6.1300),  # Servette
        (46.1990, 6.1600),  # Eaux-Vives
        (46.2340, 6.0800),  # Meyrin
        (46.1840, 6.1020),  # Onex
        (46.2170, 6.0850),  # Vernier
        (46.1810, 6.1390),  # Carouge
        (46.1960, 6.2000),  # Thônex
        (46.1890, 6.1160),  # Lancy
        (46.2840, 6.1620),  # Versoix
        (46.1980, 6.1860),  # Chêne-Bougeries
        (46.1670, 6.1160),  # Plan-les-Ouates
        (46.2320, 6.1210),  # Grand-Saconnex
    ]
)
_DEPOTS = np.array(
    [
        (46.1836, 6.1395),  # Carouge
        (46.2172, 6.0843),  # Vernier
        (46.1990, 6.1950),  # Chêne-Bourg
    ]
)

# Shift templates (start hour, end hour) and how often each is drawn.
_SHIFTS = ((6, 14), (7, 15), (8, 16), (10, 18), (6, 18))
_SHIFT_WEIGHTS = np.array([0.2, 0.25, 0.1, 0.3, 0.15])


@dataclass(frozen=True, slots=True)
class DayShape:
    """Rates that shape a generated day (the defaults give a realistic Geneva day)."""

    wheelchair_bookings: tuple[float, float] = (0.15, 0.25)
    """Range the share of bookings that need a wheelchair vehicle is drawn from."""
    wheelchair_drivers: tuple[float, float] = (0.30, 0.40)
    """Range the share of wheelchair-equipped drivers is drawn from."""
    high_priority: float = 0.10
    """Share of urgent bookings (priority 1: no lateness tolerated)."""
    locked: float = 0.03
    """Share of assigned bookings the dispatcher pinned to their driver."""
    capped_drivers: float = 0.10
    """Share of drivers with a `max_rides` cap (part-timers)."""


def generate_day(
    n_bookings: int,
    n_drivers: int,
    seed: int,
    *,
    service_date: date = DEFAULT_SERVICE_DATE,
    company_id: str = "synthetic",
    mode: Mode = "auto",
    shape: DayShape | None = None,
) -> HeuristicDone:
    """A synthetic dispatch day with an unbalanced but feasible upstream assignment.

    The same arguments always give the same event (ids and `produced_at` included). Bookings the
    upstream heuristic cannot fit stay unassigned; with sensible sizes they are few.
    """
    if n_bookings < 0 or n_drivers < 1:
        raise ValueError("need n_bookings >= 0 and n_drivers >= 1")
    shape = shape or DayShape()
    rng = np.random.default_rng(seed)
    tz = _zurich_offset(service_date)
    midnight = datetime.combine(service_date, time(0, 0), tzinfo=tz)

    drivers = _draw_drivers(rng, n_drivers, n_bookings, shape, midnight)
    bookings = _draw_bookings(rng, n_bookings, shape, midnight)
    # A wheelchair booking nobody could ever take is not a dispatch problem, it is a data bug.
    if any(WHEELCHAIR in b.requirements for b in bookings) and not any(
        WHEELCHAIR in d.capabilities for d in drivers
    ):  # pragma: no cover - _draw_drivers guarantees one; kept as a guard
        raise AssertionError("no wheelchair driver")

    tag = f"{company_id}-{service_date.isoformat()}-s{seed}-{n_bookings}x{n_drivers}"
    unassigned = HeuristicDone(
        event_id=f"evt-{tag}",
        dispatch_id=f"dsp-{tag}",
        company_id=company_id,
        service_date=service_date,
        mode=mode,
        produced_at=midnight - timedelta(minutes=15),  # the evening before: deterministic
        drivers=tuple(drivers),
        bookings=tuple(bookings),
    )
    problem, _ = Problem.from_event(unassigned)
    assignment = greedy_upstream(problem)
    # Dispatchers pin a few rides (a patient who asked for "their" driver); only assigned
    # rides can be pinned, since a locked unassigned booking would mean nothing.
    assigned = np.flatnonzero(assignment >= 0)
    n_locked = min(len(assigned), round(shape.locked * n_bookings))
    locked = set(rng.choice(assigned, size=n_locked, replace=False).tolist()) if n_locked else set()
    if locked:
        unassigned = _replace(
            unassigned,
            bookings=tuple(
                b.model_copy(update={"locked": True}) if i in locked else b
                for i, b in enumerate(bookings)
            ),
        )
    return attach_assignment(unassigned, problem, assignment)


def generate_days(
    count: int,
    sizes: Sequence[tuple[int, int]],
    seed: int,
    **kwargs: object,
) -> list[HeuristicDone]:
    """`count` independent days, cycling through `sizes` ((n_bookings, n_drivers) pairs).

    Each day gets its own seed spawned from `seed`, so day i does not depend on `count`.
    Extra keyword arguments go to `generate_day`.
    """
    if not sizes:
        raise ValueError("sizes must not be empty")
    seeds = np.random.SeedSequence(seed).generate_state(max(count, 0))
    days = []
    for i in range(count):
        n, k = sizes[i % len(sizes)]
        day = generate_day(n, k, int(seeds[i]), **kwargs)  # type: ignore[arg-type]
        days.append(day)
    return days


def greedy_upstream(problem: Problem, *, pile_minutes: float = DEFAULT_PILE_MINUTES) -> IntArray:
    """The upstream dispatcher's greedy plan: feasible under the ride model, rarely fair.

    Bookings are taken in service order, so each one is appended at the end of a driver's
    route and its feasibility is decided by that driver's current end time and place alone.
    Among the drivers who can take it, the one with the least `deadhead minutes - pile_minutes
    x rides so far` wins (ties: lowest driver index). `pile_minutes=0` is "nearest driver",
    which is already unfair (central, early drivers collect rides); the positive default also
    keeps the busy driver busy, the way an upstream dispatcher piles rides on a few drivers;
    a negative value seeks balance instead. A booking no driver can take stays unassigned (-1).
    Locked bookings are not special here: this *is* the upstream plan they are locked to.
    """
    k, n = problem.n_drivers, problem.n_bookings
    drivers = np.arange(k)
    tol = problem.tolerance
    t = problem.shift_start.copy()  # when each driver is free again
    last = np.full(k, -1, dtype=np.int64)  # each driver's last booking (-1: still at start)
    rides = np.zeros(k, dtype=np.int64)
    capped = problem.max_rides >= 0
    assignment = np.full(n, -1, dtype=np.int64)
    for b in np.argsort(problem.order, kind="stable"):
        # The ride model's step (as in feasibility.schedule_route): "fits" here is feasible there.
        empty, _ = leg(problem, drivers, last, b)
        pickup = pickup_at(problem, t + empty, b)
        dropoff = dropoff_at(problem, pickup, b)
        fits = (
            problem.capable[b]
            & (pickup <= problem.latest[b] + tol[b])
            & (dropoff <= problem.shift_end)
            & (~capped | (rides < problem.max_rides))
        )
        if not fits.any():
            continue
        best = int(np.argmin(np.where(fits, empty - pile_minutes * rides, np.inf)))
        assignment[b] = best
        t[best], last[best] = dropoff[best], b
        rides[best] += 1
    return assignment


def attach_assignment(
    event: HeuristicDone, problem: Problem, assignment: IntArray
) -> HeuristicDone:
    """`event` with `assignments` replaced by `assignment` (driver index per booking, -1 none).

    Raises if the plan breaks a hard constraint, so no generator can emit an infeasible day.
    """
    broken = violations(problem, assignment)
    if broken:
        raise AssertionError(f"upstream plan is infeasible: {sorted(broken)[:5]}")
    pairs = tuple(
        Assignment(booking_id=problem.booking_ids[i], driver_id=problem.driver_ids[int(d)])
        for i, d in enumerate(assignment)
        if d >= 0
    )
    return _replace(event, assignments=pairs)


# ------------------------------------------------------------------ drawing the day


def _zurich_offset(service_date: date) -> tzinfo:
    """Geneva's UTC offset on that date, as a fixed offset.

    A fixed offset is what the JSON carries anyway, so a day survives a round trip unchanged.
    """
    noon = datetime.combine(service_date, time(12, 0), tzinfo=ZoneInfo("Europe/Zurich"))
    offset = noon.utcoffset()
    assert offset is not None
    return timezone(offset)


def _draw_drivers(
    rng: np.random.Generator,
    k: int,
    n_bookings: int,
    shape: DayShape,
    midnight: datetime,
) -> list[Driver]:
    templates = rng.choice(len(_SHIFTS), size=k, p=_SHIFT_WEIGHTS)
    # Small fleets still need someone early and someone late, or the afternoon peak would be
    # unservable by construction rather than by the heuristic.
    if k == 1:
        templates[0] = _SHIFTS.index((6, 18))
    else:
        templates[0] = rng.choice([0, 1])  # 06-14 or 07-15
        templates[1] = rng.choice([3, 4])  # 10-18 or 06-18
        rng.shuffle(templates)

    n_wheel = round(rng.uniform(*shape.wheelchair_drivers) * k)
    n_wheel = min(k, max(n_wheel, 1 if n_bookings else 0))
    chosen = rng.choice(k, size=n_wheel, replace=False)
    wheel = set(chosen.tolist())
    # The same holds for the few wheelchair vans: one early and one late, or one all day.
    if n_wheel == 1:
        templates[chosen[0]] = _SHIFTS.index((6, 18))
    elif n_wheel > 1:
        if not any(_SHIFTS[templates[w]][0] <= 7 for w in chosen):
            templates[chosen[0]] = rng.choice([0, 1])
        if not any(_SHIFTS[templates[w]][1] >= 18 for w in chosen):
            templates[chosen[1]] = rng.choice([3, 4])

    capped = rng.random(k) < shape.capped_drivers
    caps = rng.integers(8, 13, size=k)  # a part-timer takes 8-12 rides

    at_depot = rng.random(k) < 0.6
    depot = rng.integers(len(_DEPOTS), size=k)
    home = _near(rng, _HOMES[rng.integers(len(_HOMES), size=k)], 0.008)
    starts = np.where(at_depot[:, None], _DEPOTS[depot], home)

    drivers = []
    for i in range(k):
        start_h, end_h = _SHIFTS[int(templates[i])]
        drivers.append(
            Driver(
                driver_id=f"drv-{i + 1:03d}",
                shift_start=midnight + timedelta(hours=start_h),
                shift_end=midnight + timedelta(hours=end_h),
                start=_location(starts[i]),
                capabilities=(WHEELCHAIR,) if i in wheel else (),
                max_rides=int(caps[i]) if capped[i] else None,
            )
        )
    return drivers


def _draw_bookings(
    rng: np.random.Generator, n: int, shape: DayShape, midnight: datetime
) -> list[Booking]:
    # Pickup times: a morning peak (appointments from 08:00), an afternoon peak (returns home
    # and afternoon consultations) and a flat background, in minutes since midnight.
    component = rng.choice(3, size=n, p=[0.40, 0.35, 0.25])
    minutes = np.select(
        [component == 0, component == 1],
        [rng.normal(8.5 * 60, 50, size=n), rng.normal(14.0 * 60, 60, size=n)],
        rng.uniform(6.5 * 60, 17.0 * 60, size=n),
    )
    earliest = np.round(np.clip(minutes, 6.25 * 60, 16.75 * 60) / 5.0) * 5.0
    width = rng.choice([15, 20, 25, 30], size=n)
    service = rng.integers(3, 11, size=n).astype(float)

    # Morning rides mostly go home -> hospital, afternoon rides hospital -> home; a fifth go
    # between two homes or practices (physiotherapy, dialysis centres...).
    home = _near(rng, _HOMES[rng.integers(len(_HOMES), size=n)], 0.008)
    hospital = _near(rng, _HOSPITALS[rng.integers(len(_HOSPITALS), size=n)], 0.0015)
    other = _near(rng, _HOMES[rng.integers(len(_HOMES), size=n)], 0.008)
    kind = rng.random(n)
    inbound = np.where(earliest < 12 * 60, kind < 0.7, kind < 0.2)
    outbound = ~inbound & (kind < 0.8)
    pickup = np.where(inbound[:, None], home, np.where(outbound[:, None], hospital, home))
    dropoff = np.where(inbound[:, None], hospital, np.where(outbound[:, None], home, other))

    n_wheel = round(rng.uniform(*shape.wheelchair_bookings) * n)
    wheel = np.zeros(n, dtype=bool)
    wheel[rng.choice(n, size=n_wheel, replace=False)] = True
    service = np.where(wheel, np.maximum(service, 6.0), service)  # boarding a chair takes time
    urgent = rng.random(n) < shape.high_priority

    return [
        Booking(
            booking_id=f"bkg-{i + 1:04d}",
            pickup=_location(pickup[i]),
            dropoff=_location(dropoff[i]),
            pickup_earliest=midnight + timedelta(minutes=float(earliest[i])),
            pickup_latest=midnight + timedelta(minutes=float(earliest[i] + width[i])),
            service_minutes=float(service[i]),
            priority=1 if urgent[i] else 0,
            requirements=(WHEELCHAIR,) if wheel[i] else (),
        )
        for i in range(n)
    ]


def _near(rng: np.random.Generator, centres: np.ndarray, sd_deg: float) -> np.ndarray:
    """Points scattered around `centres` (N, 2), kept inside the service area."""
    points = centres + rng.normal(0.0, sd_deg, size=centres.shape)
    points[:, 0] = np.clip(points[:, 0], *_LAT_RANGE)
    points[:, 1] = np.clip(points[:, 1], *_LON_RANGE)
    return points


def _location(point: np.ndarray) -> Location:
    # ~10 cm precision is plenty and keeps the JSON short.
    return Location(lat=round(float(point[0]), 6), lon=round(float(point[1]), 6))


def _replace(event: HeuristicDone, **changes: object) -> HeuristicDone:
    """A validated copy of `event` with some fields replaced (`model_copy` skips validation)."""
    fields = {name: getattr(event, name) for name in HeuristicDone.model_fields}
    fields.update(changes)
    return HeuristicDone.model_validate(fields)
