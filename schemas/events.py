"""The wire contract: pydantic v2 models of every event on the dispatch topics.

Validate once, at the boundary: `HeuristicDone.model_validate_json(raw, context=limits)`.
Every model is frozen and forbids unknown fields, so a typo upstream is an error that names
the field, not a silently ignored value. `SCHEMA_VERSION` is carried by every event.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1
DEFAULT_MAX_BOOKINGS = 2000
DEFAULT_MAX_DRIVERS = 300

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Mode = Literal["auto", "semi_auto", "manual"]
Status = Literal["optimized", "unchanged", "fallback", "disabled", "skipped_mode"]
Decision = Literal["accepted", "rejected"]
MoveKind = Literal["move", "swap", "chain"]
Reason = Literal[
    "improves",
    "time_window",
    "shift",
    "capability",
    "locked",
    "priority",
    "driver_limit",
    "no_improvement",
    "below_min_improvement",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Limits(BaseModel):
    """Size limits applied while validating a `HeuristicDone` (pass as validation context)."""

    model_config = ConfigDict(frozen=True)

    max_bookings: int = DEFAULT_MAX_BOOKINGS
    max_drivers: int = DEFAULT_MAX_DRIVERS

    def context(self) -> dict[str, Any]:
        return {"limits": self}


class Location(_Frozen):
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)


class Driver(_Frozen):
    driver_id: Id
    shift_start: AwareDatetime
    shift_end: AwareDatetime
    start: Location
    capabilities: tuple[Id, ...] = ()
    max_rides: int | None = Field(default=None, ge=0, description="Optional cap on rides.")

    @model_validator(mode="after")
    def _shift_ordered(self) -> Driver:
        if self.shift_end <= self.shift_start:
            raise ValueError(f"driver {self.driver_id}: shift_end must be after shift_start")
        return self


class Booking(_Frozen):
    booking_id: Id
    pickup: Location
    dropoff: Location
    pickup_earliest: AwareDatetime
    pickup_latest: AwareDatetime
    service_minutes: float = Field(default=5.0, ge=0.0, le=240.0)
    priority: int = Field(default=0, ge=0, le=9, description="0 normal; >= high is urgent.")
    requirements: tuple[Id, ...] = ()
    locked: bool = False

    @model_validator(mode="after")
    def _window_ordered(self) -> Booking:
        if self.pickup_latest < self.pickup_earliest:
            raise ValueError(
                f"booking {self.booking_id}: pickup_latest must not be before pickup_earliest"
            )
        return self


class Assignment(_Frozen):
    booking_id: Id
    driver_id: Id


class HeuristicDone(_Frozen):
    """The upstream dispatch system's result for one company and service date.

    `travel_time_matrix`, when given, is in seconds over the nodes
    `[driver starts in `drivers` order] + [pickup, dropoff of each booking in `bookings` order]`,
    so it is square of side `len(drivers) + 2 * len(bookings)`.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Id
    dispatch_id: Id
    company_id: Id
    service_date: date
    mode: Mode = "auto"
    produced_at: AwareDatetime
    drivers: tuple[Driver, ...] = Field(min_length=1)
    bookings: tuple[Booking, ...] = ()
    assignments: tuple[Assignment, ...] = ()
    travel_time_matrix: tuple[tuple[float, ...], ...] | None = None

    @field_validator("drivers")
    @classmethod
    def _drivers_limit(cls, v: tuple[Driver, ...], info: ValidationInfo) -> tuple[Driver, ...]:
        limit = _limits(info).max_drivers
        if len(v) > limit:
            raise ValueError(f"too many drivers: {len(v)} > limit {limit}")
        _unique([d.driver_id for d in v], "driver_id")
        return v

    @field_validator("bookings")
    @classmethod
    def _bookings_limit(cls, v: tuple[Booking, ...], info: ValidationInfo) -> tuple[Booking, ...]:
        limit = _limits(info).max_bookings
        if len(v) > limit:
            raise ValueError(f"too many bookings: {len(v)} > limit {limit}")
        _unique([b.booking_id for b in v], "booking_id")
        return v

    @model_validator(mode="after")
    def _references(self) -> HeuristicDone:
        bookings = {b.booking_id for b in self.bookings}
        drivers = {d.driver_id for d in self.drivers}
        seen: set[str] = set()
        for i, a in enumerate(self.assignments):
            if a.booking_id not in bookings:
                raise ValueError(f"assignments[{i}].booking_id: unknown booking {a.booking_id!r}")
            if a.driver_id not in drivers:
                raise ValueError(f"assignments[{i}].driver_id: unknown driver {a.driver_id!r}")
            if a.booking_id in seen:
                raise ValueError(
                    f"assignments[{i}].booking_id: booking {a.booking_id!r} assigned twice"
                )
            seen.add(a.booking_id)
        if self.travel_time_matrix is not None:
            side = len(self.drivers) + 2 * len(self.bookings)
            m = self.travel_time_matrix
            if len(m) != side or any(len(row) != side for row in m):
                raise ValueError(
                    f"travel_time_matrix: must be {side}x{side} "
                    "(driver starts, then pickup and dropoff of each booking)"
                )
            if any(x < 0 or not math.isfinite(x) for row in m for x in row):
                raise ValueError("travel_time_matrix: entries must be finite and >= 0")
        return self


def _limits(info: ValidationInfo) -> Limits:
    ctx = info.context or {}
    limits = ctx.get("limits")
    return limits if isinstance(limits, Limits) else Limits()


def _unique(ids: list[str], field: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"duplicate {field} {i!r}")
        seen.add(i)


# --------------------------------------------------------------------------- outputs


class Metrics(_Frozen):
    rides_per_driver: dict[str, int]
    gap: int = Field(description="max - min rides per driver, idle drivers included")
    count_sq_dev: float = Field(description="sum of squared deviations of ride counts")
    unfairness: float = Field(description="Timefold load-balance: sqrt(count_sq_dev)")
    workload_minutes: dict[str, float]
    workload_spread_minutes: float
    deadhead_km: float
    lateness_minutes: float
    violations: int = Field(description="hard-constraint violations (input ones are kept)")
    unassigned: int = 0


class PlannedRide(_Frozen):
    booking_id: Id
    pickup_at: AwareDatetime
    dropoff_at: AwareDatetime
    late_minutes: float = 0.0


class DriverSchedule(_Frozen):
    driver_id: Id
    rides: tuple[PlannedRide, ...]


class MetricsPair(_Frozen):
    before: Metrics
    after: Metrics


class Optimized(_Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Id = Field(description="deterministic from source_event_id")
    dispatch_id: Id
    source_event_id: Id
    company_id: Id
    service_date: date
    status: Status
    reason: str = ""
    model_version: str
    assignments: tuple[Assignment, ...]
    schedules: tuple[DriverSchedule, ...]
    metrics: MetricsPair
    moves_proposed: int = Field(ge=0)
    moves_accepted: int = Field(ge=0)
    latency_ms: float = Field(ge=0.0)
    produced_at: AwareDatetime


class MoveStep(_Frozen):
    booking_id: Id
    from_driver: Id
    to_driver: Id


class SwapAudit(_Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Id = Field(description="deterministic: source event id + sequence")
    dispatch_id: Id
    source_event_id: Id
    sequence: int = Field(ge=0)
    kind: MoveKind
    steps: tuple[MoveStep, ...] = Field(min_length=1)
    score: float | None = Field(description="policy score (Q-value for the DQN)")
    objective_before: tuple[float, ...]
    objective_after: tuple[float, ...] | None
    gap_before: int
    gap_after: int | None
    delta: float | None = Field(description="gain on the first objective component that changed")
    decision: Decision
    reason: Reason
    detail: str = ""
    model_version: str
    at: AwareDatetime


class ErrorDetail(_Frozen):
    loc: tuple[str | int, ...] = ()
    msg: str
    type: str


class DeadLetter(_Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Id
    source_topic: str
    source_partition: int
    source_offset: int
    key_b64: str | None = None
    value_b64: str = Field(description="the original value bytes, verbatim, base64")
    errors: tuple[ErrorDetail, ...] = Field(min_length=1)
    at: datetime
