"""The problem model: immutable dispatch-day data with numpy arrays for the hot numbers.

Times are minutes since midnight of the service date (in the time zone of the first driver's
shift), distances are kilometres. A `Problem` never changes; the assignment being improved is
a plain `numpy` vector of driver indices (-1 = unassigned) owned by whoever searches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from optimizer.travel import TravelTimeModel, TravelTimes

if TYPE_CHECKING:
    from schemas import HeuristicDone

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
T = TypeVar("T")


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
    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Values derived from the fields, built once (`memo`); `replace` starts a fresh one."""

    def __getstate__(self) -> list[Any]:
        """Pickled without `_memo` (derived tables, some as large as the travel matrices)."""
        return [{} if f.name == "_memo" else getattr(self, f.name) for f in fields(self)]

    def __setstate__(self, state: list[Any]) -> None:
        for f, value in zip(fields(self), state, strict=True):
            object.__setattr__(self, f.name, value)

    def memo(self, key: str, build: Callable[[Problem], T]) -> T:
        """The value `build(self)` under `key`, built on first use (the problem never changes,
        so neither does anything derived from it; the hot loops read their tables here)."""
        try:
            value: T = self._memo[key]
        except KeyError:
            value = self._memo[key] = build(self)
        return value

    @property
    def n_drivers(self) -> int:
        return len(self.driver_ids)

    @property
    def n_bookings(self) -> int:
        return len(self.booking_ids)

    @property
    def high_priority(self) -> BoolArray:
        """Bookings that may not be late at all (read-only, built once)."""
        return self.memo("high_priority", _high_priority)

    @property
    def tolerance(self) -> FloatArray:
        """Allowed lateness per booking, in minutes (read-only, built once)."""
        return self.memo("tolerance", _tolerance)

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
        """The problem and the upstream assignment (driver index per booking, -1 unassigned).

        The mapping lives in `optimizer.adapter` (the one event<->domain module).
        """
        from optimizer.adapter import problem_from_event  # the adapter imports this module

        return problem_from_event(event, travel_model=travel_model, rules=rules)


def _high_priority(problem: Problem) -> BoolArray:
    out: BoolArray = problem.priority >= problem.rules.high_priority
    out.setflags(write=False)
    return out


def _tolerance(problem: Problem) -> FloatArray:
    out: FloatArray = np.where(problem.high_priority, 0.0, problem.rules.late_tolerance_minutes)
    out.setflags(write=False)
    return out
