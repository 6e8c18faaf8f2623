"""An independent check of a published `Optimized` against its `HeuristicDone` input.

Written from the event contract alone (`schemas`), on purpose without any `optimizer` code:
the pass's own validator cannot vouch for itself. For days whose input carries an explicit
`travel_time_matrix` (node order: driver starts, then each booking's pickup and drop-off),
it replays every driver's day one ride at a time in service order (window opening, then
window closing, then booking id), and reports, as plain sentences, every way the output
breaks a promise:

* the published plan assigns a booking twice, drops one the input had assigned, moves a
  locked booking, or gives a ride to a driver without the required capabilities;
* a pickup later than its window allows (the late tolerance; none for priority bookings), a
  drop-off after the shift's end, more rides than `max_rides`;
* a booking later in minutes than max(its lateness in the input, the tolerance);
* the published schedule's times differ from the replay (more than 0.01 min), or it lists
  other rides than the plan;
* the ride-count gap (most minus fewest rides) grows.

An empty list means the output keeps every promise this checker knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas import HeuristicDone, Optimized

EPS_MIN = 0.01


@dataclass(frozen=True, slots=True)
class Ride:
    booking_id: str
    pickup: float  # minutes after the first shift start
    dropoff: float
    late: float


def replay(
    event: HeuristicDone, plan: dict[str, str], tolerance: float, high_priority: int
) -> tuple[dict[str, list[Ride]], list[str]]:
    """Each driver's rides under `plan` (booking -> driver) and the hard constraints broken."""
    if event.travel_time_matrix is None:
        raise ValueError("the independent check needs an explicit travel_time_matrix")
    tt = event.travel_time_matrix
    k = len(event.drivers)
    origin = min(d.shift_start for d in event.drivers)

    def minutes(t: datetime) -> float:
        return (t - origin).total_seconds() / 60.0

    index = {b.booking_id: i for i, b in enumerate(event.bookings)}
    broken: list[str] = []
    rides: dict[str, list[Ride]] = {}
    for j, driver in enumerate(event.drivers):
        mine = sorted(
            (event.bookings[index[b]] for b, d in plan.items() if d == driver.driver_id),
            key=lambda b: (b.pickup_earliest, b.pickup_latest, b.booking_id),
        )
        if driver.max_rides is not None and len(mine) > driver.max_rides:
            broken.append(f"{driver.driver_id}: {len(mine)} rides > max {driver.max_rides}")
        now, node, out = minutes(driver.shift_start), j, []
        for b in mine:
            i = index[b.booking_id]
            pick, drop = k + 2 * i, k + 2 * i + 1
            pickup = max(now + tt[node][pick] / 60.0, minutes(b.pickup_earliest))
            late = max(0.0, pickup - minutes(b.pickup_latest))
            allowed = 0.0 if b.priority >= high_priority else tolerance
            if late > allowed + EPS_MIN:
                broken.append(f"{b.booking_id}: picked up {late:.1f} min late (> {allowed:g})")
            if not set(b.requirements) <= set(driver.capabilities):
                broken.append(f"{b.booking_id}: {driver.driver_id} lacks {b.requirements}")
            dropoff = pickup + b.service_minutes + tt[pick][drop] / 60.0
            out.append(Ride(b.booking_id, pickup, dropoff, late))
            now, node = dropoff, drop
        if out and now > minutes(driver.shift_end) + EPS_MIN:
            broken.append(f"{driver.driver_id}: last drop-off after the shift ends")
        rides[driver.driver_id] = out
    return rides, broken


def check(
    event: HeuristicDone, optimized: Optimized, *, tolerance: float, high_priority: int = 1
) -> list[str]:
    """Every broken promise of `optimized` as an answer to `event` (see the module doc)."""
    problems: list[str] = []
    before = {a.booking_id: a.driver_id for a in event.assignments}
    after: dict[str, str] = {}
    for a in optimized.assignments:
        if a.booking_id in after:
            problems.append(f"{a.booking_id}: assigned twice")
        after[a.booking_id] = a.driver_id
    problems += [f"{b}: dropped from the plan" for b in before if b not in after]
    problems += [
        f"{b.booking_id}: locked, moved {before.get(b.booking_id)} -> {after.get(b.booking_id)}"
        for b in event.bookings
        if b.locked and before.get(b.booking_id) != after.get(b.booking_id)
    ]
    old, _ = replay(event, before, tolerance, high_priority)
    new, broken = replay(event, after, tolerance, high_priority)
    problems += broken
    late_before = {r.booking_id: r.late for rs in old.values() for r in rs}
    for rs in new.values():
        for r in rs:
            limit = max(late_before.get(r.booking_id, 0.0), tolerance)
            if r.late > limit + EPS_MIN:
                problems.append(f"{r.booking_id}: {r.late:.1f} min late, input {limit:.1f}")
    origin = min(d.shift_start for d in event.drivers)
    published = {s.driver_id: s.rides for s in optimized.schedules}
    for driver_id, rs in new.items():
        shown = published.get(driver_id, ())
        if [p.booking_id for p in shown] != [r.booking_id for r in rs]:
            problems.append(f"{driver_id}: published rides differ from the plan")
            continue
        for p, r in zip(shown, rs, strict=True):
            at = ((p.pickup_at - origin).total_seconds() / 60.0, r.pickup)
            to = ((p.dropoff_at - origin).total_seconds() / 60.0, r.dropoff)
            if abs(at[0] - at[1]) > EPS_MIN or abs(to[0] - to[1]) > EPS_MIN:
                problems.append(f"{p.booking_id}: published times differ from the replay")

    def gap(plan: dict[str, list[Ride]]) -> int:
        counts = [len(rs) for rs in plan.values()]
        return max(counts) - min(counts)

    if gap(new) > gap(old):
        problems.append(f"ride-count gap grew {gap(old)} -> {gap(new)}")
    return problems
