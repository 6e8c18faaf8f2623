"""The problem model: immutable dispatch-day data with numpy arrays for the hot numbers.

Times are minutes since midnight of the service date (in the time zone of the first driver's
shift), distances are kilometres. A `Problem` never changes; the assignment being improved is
a plain `numpy` vector of driver indices (-1 = unassigned) owned by whoever searches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from optimizer.travel import TravelModel, TravelTimeModel, TravelTimes, travel_times

if TYPE_CHECKING:
    from schemas import HeuristicDone

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Rules:
    """The hard-constraint parameters (plain values; the service maps settings onto them)."""

    late_tolerance_minutes: float = 10.0
    """How late after `pickup_latest` a normal booking's pickup may be (lateness is still
    counted in the objective). High-priority bookings get no tolerance."""
    high_priority: int = 1
    """Bookings with `priority >= high_priority` may not become late at all."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One dispatch day. Build with `Problem.from_event`; index drivers and bookings by position."""

    driver_ids: tuple[str, ...]
    booking_ids: tuple[str, ...]
    shift_start: FloatArray  # (K,)
    shift_end: FloatArray  # (K,)
    max_rides: IntArray  # (K,) -1 = no limit
    earliest: FloatArray  # (N,)
    latest: FloatArray  # (N,)
    service: FloatArray  # (N,)
    priority: IntArray  # (N,)
    locked: BoolArray  # (N,)
    capable: BoolArray  # (N, K) driver k has every capability booking b requires
    travel: TravelTimes
    order: IntArray  # (N,) rank of each booking in the service order (by window, then id)
    service_rank: IntArray  # (N,) booking indices in service order (the inverse of `order`)
    rules: Rules = field(default_factory=Rules)
    origin: datetime | None = None  # wall-clock time of minute 0, for planned times

    @property
    def n_drivers(self) -> int:
        return len(self.driver_ids)

    @property
    def n_bookings(self) -> int:
        return len(self.booking_ids)

    @property
    def high_priority(self) -> BoolArray:
        return self.priority >= self.rules.high_priority

    @property
    def tolerance(self) -> FloatArray:
        """Allowed lateness per booking, in minutes."""
        return np.where(self.high_priority, 0.0, self.rules.late_tolerance_minutes)

    def at(self, minutes: float) -> datetime:
        """Wall-clock time of a minute offset (needs `origin`, set by `from_event`)."""
        if self.origin is None:
            raise ValueError("problem has no origin time")
        return self.origin + timedelta(minutes=float(minutes))

    @classmethod
    def from_event(
        cls,
        event: HeuristicDone,
        *,
        travel_model: TravelTimeModel | None = None,
        rules: Rules | None = None,
    ) -> tuple[Problem, IntArray]:
        """The problem and the upstream assignment (driver index per booking, -1 unassigned)."""
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
        problem = cls(
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
        driver_index = {d: k for k, d in enumerate(problem.driver_ids)}
        booking_index = {b: i for i, b in enumerate(ids)}
        assignment = np.full(len(bookings), -1, dtype=np.int64)
        for a in event.assignments:
            assignment[booking_index[a.booking_id]] = driver_index[a.driver_id]
        return problem, assignment
