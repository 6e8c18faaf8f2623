"""Cordeau's dial-a-ride benchmark instances as dispatch days.

The 48 instances (a- and b-series, format in the data folder's README) are the standard test
bed for the shared-ride problem. Our first ride model serves one booking at a time, so an
instance becomes a dispatch day like this:

* K vehicles -> K drivers, shift [0, T] minutes from 06:00 UTC on `SERVICE_DATE`, all starting
  at the depot, no capabilities (the benchmark has none).
* n requests -> n bookings. Inbound requests (tight window on the pickup) keep it as the pickup
  window. Outbound requests (tight window [e, l] on the drop-off) get the pickup window
  [e - d - ride, l - d - ride], clipped at 0, where d is the service time and ride the direct
  travel time, so that a direct ride picked up inside it drops off inside [e, l].
  `service_minutes` = d. Loads (q) are dropped: one passenger party per ride.
* Travel times: the benchmark convention (Euclidean distance = minutes), given explicitly as
  `travel_time_matrix` in seconds over the event's node order (driver starts, then pickup and
  drop-off of each booking).
* Coordinates are abstract, in [-10, 10]. For the `Location` fields they are mapped onto the
  map around Geneva's centre (46.2044 N, 6.1432 E) at 0.5 km per unit (x east, y north):
  a 10 x 10 km square, and at 30 km/h one unit is still about one minute. Only the deadhead-km
  metric sees this mapping; travel times come from the matrix.

The upstream plan is the instance's reference solution when one exists *and* every one of its
routes is feasible as single rides; the reference routes pool passengers (several on board),
so usually they are not, and the day then gets our own greedy plan (`greedy_upstream`).
`DarpNotes` says which, and why, for every instance.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from optimizer.feasibility import schedule_all, schedule_route, service_sorted
from optimizer.generate import DEFAULT_PILE_MINUTES, attach_assignment, greedy_upstream
from optimizer.problem import Problem
from schemas import Booking, Driver, HeuristicDone, Location

DATA_DIR_ENV = "DISPATCH_RL_DARP_DIR"
SERVICE_DATE = date(2026, 1, 5)
ANCHOR = datetime.combine(SERVICE_DATE, time(6, 0), tzinfo=UTC)
"""Minute 0 of every instance: 06:00 UTC on `SERVICE_DATE`."""
CENTRE = (46.2044, 6.1432)
KM_PER_UNIT = 0.5
_KM_PER_DEG_LAT = 111.32
_OPEN_WINDOW = 1440.0  # the benchmark's "no window" node: [0, 1440]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DarpInstance:
    """One Cordeau instance as read from its file (nodes 0 and 2n+1 are the depots)."""

    name: str
    vehicles: int  # K
    requests: int  # n
    horizon: float  # T: max route duration and depot window end (minutes)
    capacity: int  # Q (unused by the single-ride model)
    max_ride: float  # L (unused by the single-ride model)
    xy: FloatArray  # (2n+2, 2)
    service: FloatArray  # (2n+2,) d
    load: npt.NDArray[np.int64]  # (2n+2,) q
    early: FloatArray  # (2n+2,) e
    late: FloatArray  # (2n+2,) l

    def distance(self, a: int, b: int) -> float:
        """Euclidean distance between two nodes (= travel minutes, by the benchmark's rule)."""
        return math.dist(self.xy[a], self.xy[b])


@dataclass(frozen=True, slots=True)
class DarpNotes:
    """What converting an instance did, honestly: where the upstream plan came from and why."""

    instance: str
    vehicles: int
    requests: int
    has_reference: bool
    """A reference solution (`reference_solutions/<name>.json`) exists."""
    used_reference: bool
    """The upstream plan is the reference's assignment (only if it is feasible as single rides)."""
    reason: str
    """One sentence on the choice, for a human."""
    reference_rides_per_driver: tuple[int, ...] | None
    """Requests per reference route (route i -> driver i), None without a reference."""
    reference_max_on_board: tuple[int, ...] | None
    """Per reference route: the most requests on board at once (> 1 means pooled rides)."""
    reference_route_feasible: tuple[bool, ...] | None
    """Per reference route: feasible under the single-ride model."""
    reference_violations: tuple[str, ...]
    """The single-ride violations of the reference routes, e.g. `route 0: time_window x 3`."""
    reference_lateness_minutes: float | None
    """Summed minutes after the window closes when the reference is run as single rides: a
    feasible reference may still be late within the normal 10-minute tolerance."""
    upstream: str
    """`reference` or `greedy_upstream(pile_minutes=...)`."""
    rides_per_driver: tuple[int, ...]
    """Rides per driver in the upstream plan of the returned day."""
    unassigned: int
    """Bookings the upstream plan leaves unassigned."""
    unservable_alone: int
    """Bookings no driver could serve even as its only ride (a subset of `unassigned`)."""
    lateness_minutes: float
    """Summed lateness (within tolerance) of the returned upstream plan."""


PACKAGED_DATA_DIR = Path(__file__).resolve().parent / "data" / "darp-cordeau"
"""The 48 instances shipped inside the package (provenance and licence note: its README.md)."""


def default_data_dir() -> Path:
    """`$DISPATCH_RL_DARP_DIR`, else the copy shipped in the package (`optimizer/data`)."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return PACKAGED_DATA_DIR


def list_instances(data_dir: Path | str | None = None) -> list[str]:
    """Names of the instance files in the data folder (e.g. `a2-16`), sorted."""
    folder = _data_dir(data_dir)
    return sorted(
        p.name for p in folder.iterdir() if p.is_file() and p.name[:1] in "ab" and "-" in p.name
    )


def load_instance(name: str, data_dir: Path | str | None = None) -> DarpInstance:
    """Parse one instance file (header `K n T Q L`, then 2n+2 lines `id x y d q e l`)."""
    path = _data_dir(data_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"no Cordeau instance {name!r} at {path}")
    lines = [line.split() for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
    k, n, horizon, capacity, max_ride = (int(float(v)) for v in lines[0])
    rows = lines[1:]
    if len(rows) != 2 * n + 2:
        raise ValueError(f"{name}: expected {2 * n + 2} node lines, found {len(rows)}")
    table = np.array([[float(v) for v in row[:7]] for row in rows], dtype=float)
    if not np.array_equal(table[:, 0], np.arange(2 * n + 2)):
        raise ValueError(f"{name}: node ids must be 0..{2 * n + 1} in order")
    return DarpInstance(
        name=name,
        vehicles=k,
        requests=n,
        horizon=float(horizon),
        capacity=capacity,
        max_ride=float(max_ride),
        xy=table[:, 1:3].copy(),
        service=table[:, 3].copy(),
        load=table[:, 4].astype(np.int64),
        early=table[:, 5].copy(),
        late=table[:, 6].copy(),
    )


def load_reference(name: str, data_dir: Path | str | None = None) -> list[list[int]] | None:
    """The reference routes (node ids, depots excluded), or None if the instance has none."""
    path = _data_dir(data_dir) / "reference_solutions" / f"{name}.json"
    if not path.is_file():
        return None
    routes = json.loads(path.read_text(encoding="utf-8"))["routes"]
    return [[int(v) for v in route] for route in routes]


def darp_day(name: str, data_dir: Path | str | None = None) -> tuple[HeuristicDone, DarpNotes]:
    """The instance as a dispatch day with a feasible upstream plan, and notes on how."""
    inst = load_instance(name, data_dir)
    day = _unassigned_day(inst)
    problem, _ = Problem.from_event(day)
    n = inst.requests

    reference = load_reference(name, data_dir)
    ref_rides: tuple[int, ...] | None = None
    ref_ok: tuple[bool, ...] | None = None
    ref_on_board: tuple[int, ...] | None = None
    ref_broken: list[str] = []
    ref_late: float | None = None
    assignment = np.full(n, -1, dtype=np.int64)
    if reference is not None:
        if len(reference) > inst.vehicles:
            raise ValueError(f"{name}: {len(reference)} reference routes for {inst.vehicles} cars")
        for k, route in enumerate(reference):
            # Pickup node i (1..n) is booking i-1; drop-off nodes only confirm the route.
            assignment[[v - 1 for v in route if 1 <= v <= n]] = k
        ref_rides = tuple(sum(1 <= v <= n for v in route) for route in reference)
        ref_on_board = tuple(_max_on_board(route, n) for route in reference)
        ok = []
        ref_late = 0.0
        for k in range(len(reference)):
            schedule = schedule_route(
                problem, k, service_sorted(problem, np.flatnonzero(assignment == k).tolist())
            )
            ok.append(not schedule.violations)
            ref_late += schedule.lateness_minutes
            counts: dict[str, int] = {}
            for broken, _subject in schedule.violations:
                counts[broken] = counts.get(broken, 0) + 1
            ref_broken += [f"route {k}: {r} x {c}" for r, c in sorted(counts.items())]
        ref_ok = tuple(ok)

    if ref_ok is not None and all(ref_ok) and not (assignment < 0).any():
        used, upstream = True, "reference"
        reason = (
            f"reference routes carry up to {max(ref_on_board or (0,))} requests at once, but run "
            "one ride at a time every route still keeps the hard constraints "
            f"({ref_late:.1f} min late in total, within the lateness tolerance)"
        )
    else:
        used = False
        upstream = f"greedy_upstream(pile_minutes={DEFAULT_PILE_MINUTES})"
        assignment = greedy_upstream(problem)
        if ref_ok is None:
            reason = "no reference solution; greedy single-ride insertion"
        else:
            bad = sum(not f for f in ref_ok)
            reason = (
                f"reference routes carry up to {max(ref_on_board or (0,))} requests at once; "
                f"run one ride at a time, {bad} of {len(ref_ok)} break hard constraints; "
                "greedy single-ride insertion instead"
            )

    alone = np.array(
        [
            any(not schedule_route(problem, k, (b,)).violations for k in range(inst.vehicles))
            for b in range(n)
        ],
        dtype=bool,
    )
    rides = np.bincount(assignment[assignment >= 0], minlength=inst.vehicles)
    late = sum(s.lateness_minutes for s in schedule_all(problem, assignment))
    notes = DarpNotes(
        instance=name,
        vehicles=inst.vehicles,
        requests=n,
        has_reference=reference is not None,
        used_reference=used,
        reason=reason,
        reference_rides_per_driver=ref_rides,
        reference_max_on_board=ref_on_board,
        reference_route_feasible=ref_ok,
        reference_violations=tuple(ref_broken),
        reference_lateness_minutes=ref_late,
        upstream=upstream,
        rides_per_driver=tuple(int(r) for r in rides),
        unassigned=int((assignment < 0).sum()),
        unservable_alone=int((~alone).sum()),
        lateness_minutes=float(late),
    )
    return attach_assignment(day, problem, assignment), notes


# ------------------------------------------------------------------ conversion


def _data_dir(data_dir: Path | str | None) -> Path:
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Cordeau DARP data folder not found: {folder} (set {DATA_DIR_ENV} or pass data_dir)"
        )
    return folder


def _unassigned_day(inst: DarpInstance) -> HeuristicDone:
    k, n = inst.vehicles, inst.requests
    shift_end = ANCHOR + timedelta(minutes=inst.horizon)
    depot = _location(inst.xy[0])
    drivers = tuple(
        Driver(
            driver_id=f"veh-{v + 1}",
            shift_start=ANCHOR,
            shift_end=shift_end,
            start=depot,
        )
        for v in range(k)
    )
    bookings = []
    for i in range(1, n + 1):
        p, d = i, n + i
        if _is_tight(inst, p):
            earliest, latest = inst.early[p], inst.late[p]
        else:
            # Outbound: the appointment is the drop-off; leave early enough for a direct ride.
            lead = inst.service[p] + inst.distance(p, d)
            earliest = max(0.0, inst.early[d] - lead)
            latest = max(0.0, inst.late[d] - lead)
        bookings.append(
            Booking(
                booking_id=f"req-{i:03d}",
                pickup=_location(inst.xy[p]),
                dropoff=_location(inst.xy[d]),
                pickup_earliest=ANCHOR + timedelta(minutes=float(earliest)),
                pickup_latest=ANCHOR + timedelta(minutes=float(latest)),
                service_minutes=float(inst.service[p]),
            )
        )
    # Node order of the contract: driver starts (all the depot), then pickup, drop-off per booking.
    nodes = [0] * k + [v for i in range(1, n + 1) for v in (i, n + i)]
    return euclidean_event(
        f"cordeau-{inst.name}",
        "cordeau",
        SERVICE_DATE,
        ANCHOR - timedelta(hours=1),
        drivers,
        tuple(bookings),
        inst.xy[nodes],
    )


def euclidean_event(
    tag: str,
    company_id: str,
    service_date: date,
    produced_at: datetime,
    drivers: tuple[Driver, ...],
    bookings: tuple[Booking, ...],
    xy: FloatArray,
    *,
    minutes_per_unit: float = 1.0,
) -> HeuristicDone:
    """A benchmark instance's day: travel minutes = Euclidean distance x `minutes_per_unit`,
    given as the event's explicit `travel_time_matrix` over `xy` (the contract's node order:
    driver starts, then each booking's pickup and drop-off). Also used by `optimizer.solomon`."""
    seconds = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=-1)) * 60.0
    seconds *= minutes_per_unit
    return HeuristicDone(
        event_id=f"evt-{tag}",
        dispatch_id=f"dsp-{tag}",
        company_id=company_id,
        service_date=service_date,
        mode="auto",
        produced_at=produced_at,
        drivers=drivers,
        bookings=bookings,
        travel_time_matrix=tuple(tuple(float(x) for x in row) for row in seconds),
    )


def _max_on_board(route: list[int], n: int) -> int:
    """Most requests on board at once along a route (pickups 1..n, drop-offs n+1..2n)."""
    on_board = most = 0
    for v in route:
        on_board += 1 if v <= n else -1
        most = max(most, on_board)
    return most


def _is_tight(inst: DarpInstance, node: int) -> bool:
    return bool(inst.late[node] - inst.early[node] < _OPEN_WINDOW)


def _location(xy: FloatArray) -> Location:
    return plane_location(xy, KM_PER_UNIT)


def plane_location(xy: FloatArray, km_per_unit: float) -> Location:
    """A point of an instance's plane (x east, y north) around Geneva's centre."""
    lat0, lon0 = CENTRE
    km_per_deg_lon = _KM_PER_DEG_LAT * math.cos(math.radians(lat0))
    return Location(
        lat=round(lat0 + float(xy[1]) * km_per_unit / _KM_PER_DEG_LAT, 6),
        lon=round(lon0 + float(xy[0]) * km_per_unit / km_per_deg_lon, 6),
    )
