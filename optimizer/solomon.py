"""Solomon's VRPTW instances as patient-transport days: a third, independent source of days.

Our own two generators (`optimizer.generate`, `optimizer.patient_transport`) and Cordeau's
dial-a-ride instances are what the pass was built and tuned on. Solomon's 1987 instances
(six of the 56 ship in `optimizer/data/solomon/`: clustered C, random R and mixed RC
geography; type 1 short horizon with tight windows, type 2 long horizon) were written for
another problem, so they check the pass on days nobody designed it for. A day is made so:

* The depot is the hospital. Each sampled customer is one patient: with probability 1/2 a
  ride *to* the hospital (picked up at home inside the customer's window [ready, due]), else
  a ride *home* (picked up at the hospital so that a direct ride arrives inside [ready, due]:
  the pickup window is shifted back by the boarding and the ride, clipped at 0).
  `service_minutes` is the customer's service time (boarding). Demands are dropped.
* `n_drivers` vehicles start at the depot, shift [0, horizon].
* Travel time is the benchmark's rule (Euclidean distance = minutes), given explicitly as the
  event's `travel_time_matrix`. Type-2 horizons run to 56 hours, beyond one service day: when
  the horizon exceeds `MAX_HORIZON_MINUTES` every time (travel, windows, boarding) is scaled
  by the same factor, which keeps the instance's structure on a faster clock.
* Coordinates map onto the area around Geneva's centre at 0.5 km per scaled minute, so the
  deadhead-km figure agrees with the minutes at 30 km/h.
* The upstream plan is `greedy_upstream` (what our upstream dispatcher would do); customers
  no driver can take stay unassigned, as they would upstream.

`solomon_day(name, n, k, seed)` samples `n` customers with a seeded generator: the same
arguments give the same day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from optimizer.darp import euclidean_event, plane_location
from optimizer.generate import attach_assignment, greedy_upstream
from optimizer.problem import Problem
from schemas import Booking, Driver, HeuristicDone, Location

DATA_DIR = Path(__file__).parent / "data" / "solomon"
INSTANCES = ("C101", "C201", "R101", "R201", "RC101", "RC201")
SERVICE_DATE = date(2026, 3, 2)
ANCHOR = datetime.combine(SERVICE_DATE, time(6, 0), tzinfo=UTC)
MAX_HORIZON_MINUTES = 900.0
"""Longest shift a day gets (15 h); longer instance horizons are scaled down to it."""
KM_PER_MINUTE = 0.5

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SolomonInstance:
    """One instance as read from its file: row 0 is the depot, rows 1.. the customers."""

    name: str
    vehicles: int
    xy: FloatArray  # (1 + customers, 2)
    ready: FloatArray
    due: FloatArray
    service: FloatArray

    @property
    def horizon(self) -> float:
        return float(self.due[0])

    @property
    def customers(self) -> int:
        return len(self.xy) - 1


def load_instance(name: str, data_dir: Path = DATA_DIR) -> SolomonInstance:
    """Parse `<name>.txt` (the classic format: split on whitespace, CRLF lines)."""
    words = (data_dir / f"{name}.txt").read_text().split()
    vehicles = int(words[words.index("NUMBER") + 2])  # NUMBER CAPACITY <K> <Q>
    start = words.index("SERVICE", words.index("CUSTOMER")) + 2  # after "SERVICE TIME"
    rows = np.array(words[start:], dtype=np.float64).reshape(-1, 7)
    if rows[0, 0] != 0 or not np.array_equal(rows[:, 0], np.arange(len(rows))):
        raise ValueError(f"{name}: customer numbers are not 0..{len(rows) - 1}")
    return SolomonInstance(
        name=name,
        vehicles=vehicles,
        xy=rows[:, 1:3],
        ready=rows[:, 4],
        due=rows[:, 5],
        service=rows[:, 6],
    )


def solomon_day(name: str, n_bookings: int, n_drivers: int, seed: int) -> HeuristicDone:
    """A dispatch day of `n_bookings` patients of instance `name` and `n_drivers` vehicles,
    with the upstream greedy plan attached (see the module docstring)."""
    inst = load_instance(name)
    if not 1 <= n_bookings <= inst.customers:
        raise ValueError(f"{name}: 1..{inst.customers} bookings, not {n_bookings}")
    if not 1 <= n_drivers <= inst.vehicles:
        raise ValueError(f"{name}: 1..{inst.vehicles} drivers, not {n_drivers}")
    rng = np.random.default_rng([seed, n_bookings, n_drivers, INSTANCES.index(name)])
    customers = np.sort(rng.choice(np.arange(1, inst.customers + 1), n_bookings, replace=False))
    home = rng.random(n_bookings) < 0.5  # True: a ride home from the hospital
    scale = min(1.0, MAX_HORIZON_MINUTES / inst.horizon)
    day = _unassigned_day(inst, customers, home, n_drivers, scale, seed)
    problem, _ = Problem.from_event(day)
    return attach_assignment(day, problem, greedy_upstream(problem))


def _unassigned_day(
    inst: SolomonInstance,
    customers: npt.NDArray[np.int64],
    home: npt.NDArray[np.bool_],
    n_drivers: int,
    scale: float,
    seed: int,
) -> HeuristicDone:
    depot = _location(inst.xy[0], inst.xy[0], scale)
    drivers = tuple(
        Driver(
            driver_id=f"veh-{v + 1:02d}",
            shift_start=ANCHOR,
            shift_end=ANCHOR + timedelta(minutes=inst.horizon * scale),
            start=depot,
        )
        for v in range(n_drivers)
    )
    bookings, nodes = [], [0] * n_drivers  # node order: driver starts, then pickup, drop-off
    for c, back in zip(customers.tolist(), home.tolist(), strict=True):
        pickup, dropoff = (0, c) if back else (c, 0)
        earliest, latest = inst.ready[c], inst.due[c]
        if back:  # the window is on arriving home: leave the hospital early enough
            lead = inst.service[c] + float(np.hypot(*(inst.xy[c] - inst.xy[0])))
            earliest, latest = max(0.0, earliest - lead), max(0.0, latest - lead)
        bookings.append(
            Booking(
                booking_id=f"{'home' if back else 'in'}-{c:03d}",
                pickup=_location(inst.xy[pickup], inst.xy[0], scale),
                dropoff=_location(inst.xy[dropoff], inst.xy[0], scale),
                pickup_earliest=ANCHOR + timedelta(minutes=float(earliest) * scale),
                pickup_latest=ANCHOR + timedelta(minutes=float(latest) * scale),
                service_minutes=float(inst.service[c]) * scale,
            )
        )
        nodes += [pickup, dropoff]
    return euclidean_event(
        f"solomon-{inst.name.lower()}-{len(customers)}x{n_drivers}-s{seed}",
        "solomon",
        SERVICE_DATE,
        ANCHOR - timedelta(hours=1),
        drivers,
        tuple(bookings),
        inst.xy[nodes],
        minutes_per_unit=scale,
    )


def _location(xy: FloatArray, origin: FloatArray, scale: float) -> Location:
    return plane_location(xy - origin, KM_PER_MINUTE * scale)
