"""A second day generator, built like real non-emergency patient transport (Lausanne region).

`optimizer.generate` draws rides from smooth morning/afternoon peaks around Geneva and plans
them with a "keep the busy driver busy" heuristic. This one is structured differently, the way
a transport desk's day actually looks, so that a policy trained on the first is tested on days
it has not seen the like of:

* **Clustered appointment times.** Dialysis runs in fixed sessions (08:00, 13:00; about four
  hours): patients must reach the centre just before the session and go home right after it,
  so dozens of pickups share the same quarter of an hour. Consultations start on the hour or
  half hour; the patient must arrive 5-25 minutes early and goes home 1-2 hours later.
* **Long discharge trips.** Hospital discharges go to homes anywhere in the region (up to
  about 40 km, 1.5 hours of driving), with wider windows (45-60 minutes).
* **A minority of wheelchair vans.** 20-30 % of the fleet carries wheelchairs, and about 15 %
  of the rides need one (a quarter of dialysis patients and discharges): capability binds.
* **Staggered shifts.** Starts every 30 minutes from 06:00 to 10:00 (more early ones, for
  the first dialysis wave), 8.5 hours long, with
  part-timers on 4.5-hour shifts and ride caps.
* **Locked and urgent rides.** A few inter-hospital transfers are urgent (priority 1, narrow
  window); the desk pins a few rides to their driver (locked).
* **Late tolerance 0.** `PATIENT_RULES`: a pickup after its window closes is infeasible. The
  upstream plan is feasible under it and the days are built with it (`patient_days`).

The upstream plan is a zone-based first-fit desk: drivers are ranked by shift start and by
how near their start is to the ride's pickup, and each ride (in time order) goes to the first
driver in that ranking who can still take it, so early central drivers fill up first. The
plan is feasible (checked by `attach_assignment`) and rarely fair. With clustered slots and no
late tolerance it leaves 10-25 % of the rides unassigned at these fleet sizes (a desk hands
them to a subcontractor); the pass works on the assigned ones. Everything is a pure function
of the arguments and the seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from optimizer.generate import WHEELCHAIR, attach_assignment
from optimizer.problem import IntArray, Problem, Rules
from optimizer.travel import TravelModel
from schemas import Booking, Driver, HeuristicDone, Location
from schemas.events import Mode

KIND = "patient"
PATIENT_RULES = Rules(late_tolerance_minutes=0.0)
"""Late tolerance 0: the days are generated, planned upstream and evaluated with it."""
DEFAULT_SERVICE_DATE = date(2026, 3, 10)
_TZ = timezone(timedelta(hours=1))  # Lausanne in March (CET)

# Hospitals and centres (approximate public locations).
_CHUV = (46.5253, 6.6413)
_SITES = np.array(
    [
        _CHUV,  # CHUV, Lausanne
        (46.5290, 6.6290),  # Clinique La Source, Lausanne
        (46.5110, 6.4960),  # Hôpital de Morges
        (46.5390, 6.5880),  # dialysis centre, Renens
        (46.4628, 6.8419),  # Hôpital de Vevey (Samaritain)
        (46.5330, 6.6590),  # Hôpital ophtalmique, Lausanne
    ]
)
_DIALYSIS = np.array([_SITES[0], _SITES[3], _SITES[2]])
# Where patients live: the agglomeration (weighted up) and the region's towns.
_CITY = np.array(
    [
        (46.5197, 6.6323),  # Lausanne centre
        (46.5390, 6.5880),  # Renens
        (46.5100, 6.6620),  # Pully
        (46.5410, 6.6120),  # Prilly
        (46.5500, 6.6700),  # Epalinges
        (46.5040, 6.6860),  # Lutry
        (46.5200, 6.5700),  # Ecublens
    ]
)
_REGION = np.array(
    [
        (46.6413, 6.6330),  # Echallens
        (46.5113, 6.4985),  # Morges
        (46.4628, 6.8419),  # Vevey
        (46.6685, 6.7976),  # Moudon
        (46.5710, 6.8240),  # Oron
        (46.6136, 6.5072),  # Cossonay
        (46.7785, 6.6410),  # Yverdon-les-Bains
        (46.4560, 6.3370),  # Rolle
    ]
)
_DEPOTS = np.array([(46.5350, 6.6000), (46.5000, 6.6400)])
_SESSIONS = (8.0 * 60, 13.0 * 60)  # dialysis session starts (minutes since midnight)
_SESSION_MINUTES = 240.0
_START_WEIGHTS = np.array([0.2, 0.15, 0.15, 0.1, 0.1, 0.1, 0.08, 0.06, 0.06])


def patient_day(
    n_bookings: int,
    n_drivers: int,
    seed: int,
    *,
    service_date: date = DEFAULT_SERVICE_DATE,
    company_id: str = "patient-transport",
    mode: Mode = "auto",
    travel: TravelModel | None = None,
) -> HeuristicDone:
    """A patient-transport day with a feasible (late tolerance 0), unfair upstream plan."""
    if n_bookings < 0 or n_drivers < 1:
        raise ValueError("need n_bookings >= 0 and n_drivers >= 1")
    rng = np.random.default_rng([seed, 0x9A71E7])  # its own stream: never generate.py's
    travel = travel or TravelModel()
    midnight = datetime.combine(service_date, time(0, 0), tzinfo=_TZ)
    drivers = _drivers(rng, n_drivers, midnight)
    bookings = _bookings(rng, n_bookings, midnight, travel)
    tag = f"{company_id}-{service_date.isoformat()}-s{seed}-{n_bookings}x{n_drivers}"
    event = HeuristicDone(
        event_id=f"evt-{tag}",
        dispatch_id=f"dsp-{tag}",
        company_id=company_id,
        service_date=service_date,
        mode=mode,
        produced_at=midnight - timedelta(hours=2),  # the evening before: deterministic
        drivers=tuple(drivers),
        bookings=tuple(bookings),
    )
    problem, _ = Problem.from_event(event, travel_model=travel, rules=PATIENT_RULES)
    assignment = first_fit_upstream(problem)
    assigned = np.flatnonzero(assignment >= 0)
    n_locked = min(len(assigned), round(0.04 * n_bookings))
    if n_locked:
        locked = set(rng.choice(assigned, size=n_locked, replace=False).tolist())
        event = event.model_copy(
            update={
                "bookings": tuple(
                    b.model_copy(update={"locked": True}) if i in locked else b
                    for i, b in enumerate(bookings)
                )
            }
        )
        event = HeuristicDone.model_validate(event.model_dump())  # re-validated copy
    return attach_assignment(event, problem, assignment)


def patient_days_events(
    sizes: Sequence[tuple[int, int]], seeds: Iterable[int], **kwargs: Any
) -> list[HeuristicDone]:
    """`patient_day(n, k, seed)` for each seed, cycling through `sizes`."""
    return [
        patient_day(*sizes[i % len(sizes)], int(seed), **kwargs) for i, seed in enumerate(seeds)
    ]


def patient_days(
    sizes: Sequence[tuple[int, int]],
    seeds: Iterable[int],
    *,
    rules: Rules | None = None,
    travel: TravelModel | None = None,
) -> list[Any]:
    """Training/evaluation `Day`s (source `patient`), built with late tolerance 0.

    `rules` are the operator's; only the late tolerance is set to 0, as these days demand.
    """
    from optimizer.dqn.days import day_from_event

    day_rules = replace(rules or PATIENT_RULES, late_tolerance_minutes=0.0)
    out = []
    for i, seed in enumerate(seeds):
        n, k = sizes[i % len(sizes)]
        event = patient_day(n, k, int(seed), travel=travel)
        out.append(
            day_from_event(event, KIND, f"pt-{n}x{k}-s{seed}", rules=day_rules, travel=travel)
        )
    return out


def first_fit_upstream(problem: Problem) -> IntArray:
    """The desk's plan: rides in time order, each to the first driver able to take it.

    Drivers are ranked per ride by (shift start, distance from their start to the pickup in
    10-minute bands), so the early, central drivers fill up first. A ride is appended at the
    end of the driver's route (the ride model's arithmetic: wait for the window, pickup,
    service and ride, next leg from the drop-off). A ride nobody can take stays unassigned.
    """
    k, n = problem.n_drivers, problem.n_bookings
    tt = problem.travel
    free_at = problem.shift_start.copy()
    last = np.full(k, -1, dtype=np.int64)
    rides = np.zeros(k, dtype=np.int64)
    capped = problem.max_rides >= 0
    assignment = np.full(n, -1, dtype=np.int64)
    band = np.floor(tt.start_to_pickup / 10.0)  # (K, N)
    for b in np.argsort(problem.order, kind="stable"):
        leg = np.where(last < 0, tt.start_to_pickup[:, b], tt.dropoff_to_pickup[last, b])
        pickup = np.maximum(free_at + leg, problem.earliest[b])
        dropoff = pickup + problem.service[b] + tt.ride[b]
        fits = (
            problem.capable[b]
            & (pickup <= problem.latest[b] + problem.tolerance[b])
            & (dropoff <= problem.shift_end)
            & (~capped | (rides < problem.max_rides))
        )
        if not fits.any():
            continue
        rank = np.lexsort((np.arange(k), band[:, b], problem.shift_start))
        best = int(next(d for d in rank if fits[d]))
        assignment[b] = best
        free_at[best], last[best] = dropoff[best], b
        rides[best] += 1
    return assignment


# ------------------------------------------------------------------ drawing the day


def _drivers(rng: np.random.Generator, k: int, midnight: datetime) -> list[Driver]:
    # 06:00 .. 10:00 in half hours, weighted early: the morning dialysis wave needs vans
    starts = 6 * 60 + 30 * rng.choice(9, size=k, p=_START_WEIGHTS)
    length = np.where(rng.random(k) < 0.15, 270, 510)  # part-timers: 4.5 h, others 8.5 h
    starts[0], length[0] = 6 * 60, 510  # someone for the first dialysis session
    if k > 1:
        starts[1], length[1] = 10 * 60, 510  # someone for the evening returns
    n_wheel = int(np.clip(round(rng.uniform(0.20, 0.30) * k), 1, k))
    wheel = rng.choice(k, size=n_wheel, replace=False)
    starts[wheel[0]], length[wheel[0]] = 6 * 60 + 30, 690  # one long wheelchair shift
    if n_wheel > 1:
        starts[wheel[1]], length[wheel[1]] = 9 * 60 + 30, 510
    order = rng.permutation(k)
    at_depot = rng.random(k) < 0.7
    homes = _scatter(rng, _CITY[rng.integers(len(_CITY), size=k)], 0.01)
    start_at = np.where(at_depot[:, None], _DEPOTS[rng.integers(len(_DEPOTS), size=k)], homes)
    out = []
    for pos, i in enumerate(order):
        part_time = length[i] < 300
        out.append(
            Driver(
                driver_id=f"van-{pos + 1:03d}",
                shift_start=midnight + timedelta(minutes=float(starts[i])),
                shift_end=midnight + timedelta(minutes=float(starts[i] + length[i])),
                start=_loc(start_at[i]),
                capabilities=(WHEELCHAIR,) if i in set(wheel.tolist()) else (),
                max_rides=int(rng.integers(4, 7)) if part_time else None,
            )
        )
    return out


def _bookings(
    rng: np.random.Generator, n: int, midnight: datetime, travel: TravelModel
) -> list[Booking]:
    """Dialysis pairs, consultation pairs, discharges and urgent transfers."""
    out: list[tuple[Any, ...]] = []  # (pickup, dropoff, earliest, width, service, wheel, prio)

    def minutes(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
        pa, pb = np.asarray(a, dtype=float)[None, :], np.asarray(b, dtype=float)[None, :]
        return float(travel.minutes(pa, pb)[0, 0])

    def home() -> npt.NDArray[np.float64]:
        centres = _CITY if rng.random() < 0.8 else _REGION
        point: npt.NDArray[np.float64] = _scatter(
            rng, centres[rng.integers(len(centres))][None, :], 0.01
        )[0]
        return point

    while len(out) < n:
        kind = rng.choice(4, p=[0.24, 0.52, 0.17, 0.07])
        wheel = bool(rng.random() < (0.25, 0.10, 0.25, 0.15)[kind])
        board = float(rng.integers(3, 8)) + (4.0 if wheel else 0.0)
        if kind == 0:  # dialysis: to the session, and home after it
            h, centre = home(), _DIALYSIS[rng.integers(len(_DIALYSIS))]
            session = _SESSIONS[int(rng.integers(len(_SESSIONS)))]
            ride = minutes(h, centre)
            go = session - ride - board - float(rng.choice([20.0, 25.0, 30.0]))
            out.append((h, centre, go, 20.0, board, wheel, 0))
            back = session + _SESSION_MINUTES + float(rng.choice([0.0, 5.0, 10.0]))
            out.append((centre, h, back, 25.0, board, wheel, 0))
        elif kind == 1:  # consultation on the hour or half hour, and back
            h, site = home(), _SITES[rng.integers(len(_SITES))]
            appt = 8 * 60 + 30 * float(rng.integers(0, 17))  # 08:00 .. 16:00
            ride = minutes(h, site)
            go = appt - ride - board - float(rng.choice([10.0, 15.0, 20.0, 25.0]))
            out.append((h, site, go, 20.0, board, wheel, 0))
            if rng.random() < 0.8:
                back = appt + float(rng.choice([60.0, 75.0, 90.0, 120.0]))
                out.append((site, h, back, 30.0, board, wheel, 0))
        elif kind == 2:  # discharge: a hospital to a home anywhere in the region
            site = _SITES[rng.integers(3)]
            dest = _scatter(rng, _REGION[rng.integers(len(_REGION))][None, :], 0.015)[0]
            start = 10 * 60 + 15 * float(rng.integers(0, 21))  # 10:00 .. 15:00
            out.append((site, dest, start, float(rng.choice([45.0, 60.0])), board, wheel, 0))
        else:  # urgent transfer between two sites, narrow window
            a, b = rng.choice(len(_SITES), size=2, replace=False)
            start = 8 * 60 + 5 * float(rng.integers(0, 97))  # 08:00 .. 16:00
            out.append((_SITES[a], _SITES[b], start, 10.0, board, wheel, 1))
    out = out[:n]
    # Times on the 5-minute grid the desk books on, never before 06:00.
    return [
        Booking(
            booking_id=f"ride-{i + 1:04d}",
            pickup=_loc(p),
            dropoff=_loc(d),
            pickup_earliest=midnight + timedelta(minutes=_grid(e)),
            pickup_latest=midnight + timedelta(minutes=_grid(e) + w),
            service_minutes=s,
            priority=prio,
            requirements=(WHEELCHAIR,) if wheel else (),
        )
        for i, (p, d, e, w, s, wheel, prio) in enumerate(out)
    ]


def _grid(minute: float) -> float:
    return max(6 * 60.0, float(np.floor(minute / 5.0) * 5.0))


def _scatter(
    rng: np.random.Generator, centres: npt.NDArray[np.float64], sd_deg: float
) -> npt.NDArray[np.float64]:
    points: npt.NDArray[np.float64] = centres + rng.normal(0.0, sd_deg, size=centres.shape)
    return points


def _loc(point: npt.ArrayLike) -> Location:
    p = np.asarray(point, dtype=float)
    return Location(lat=round(float(p[0]), 6), lon=round(float(p[1]), 6))
