"""The wire contract's input side: `HeuristicDone` and the types every event shares.

The events the optimizer produces (`Optimized`, `SwapAudit`, `DeadLetter`) are in
`schemas.results`.

Validate once, at the boundary: `HeuristicDone.model_validate_json(raw, context=limits)`.
Every model is frozen and forbids unknown fields, so a typo upstream is an error that names
the field, not a silently ignored value. `SCHEMA_VERSION` is carried by every event.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
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
from pydantic_core import PydanticCustomError

SCHEMA_VERSION: Literal[1] = 1
DEFAULT_MAX_BOOKINGS = 2000
DEFAULT_MAX_DRIVERS = 300
DEFAULT_WINDOW_DAYS = 2.0
DEFAULT_HORIZON_DAYS = 366.0
DEFAULT_MAX_RADIUS_KM = 500.0

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Mode = Literal["auto", "semi_auto", "manual"]
Status = Literal["optimized", "unchanged", "fallback", "disabled", "skipped_mode"]
Decision = Literal["accepted", "rejected"]
MoveKind = Literal["move", "swap", "chain", "compound"]
StopReason = Literal["target_reached", "no_improving_move", "budget", "time_limit"]
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
    "revisit",
]


class FrozenModel(BaseModel):
    """Base of every event model: immutable, unknown fields refused, no NaN or infinity."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Limits(BaseModel):
    """Size limits applied while validating a `HeuristicDone` (pass as validation context)."""

    model_config = ConfigDict(frozen=True)

    max_bookings: int = DEFAULT_MAX_BOOKINGS
    max_drivers: int = DEFAULT_MAX_DRIVERS
    window_days: float = DEFAULT_WINDOW_DAYS
    """Pickup windows and shifts must lie within the service date +- this many days (the
    slack covers time zones and night shifts); further out is `window_out_of_range`."""
    horizon_days: float = DEFAULT_HORIZON_DAYS
    """The service date must lie within this many days of `produced_at`, and in the years
    `min_year`..`max_year`; else `service_date_out_of_range` (a whole day dated year 1 or 9999
    is as absurd as one window there)."""
    min_year: int = 2000
    max_year: int = 2199
    max_radius_km: float = DEFAULT_MAX_RADIUS_KM
    """Every place of a day must lie within this distance of the day's median place; further
    out is `coordinates_too_spread` (a day's rides are one region's, not a continent's)."""

    def context(self) -> dict[str, Any]:
        return {"limits": self}


class Location(FrozenModel):
    """A point in WGS 84 degrees."""

    lat: float = Field(ge=-90.0, le=90.0, description="Latitude, degrees north.")
    lon: float = Field(ge=-180.0, le=180.0, description="Longitude, degrees east.")


class Driver(FrozenModel):
    """A driver on duty for the service date, with the vehicle's capabilities."""

    driver_id: Id = Field(description="Unique within the dispatch.")
    shift_start: AwareDatetime = Field(description="First moment the driver may drive.")
    shift_end: AwareDatetime = Field(
        description="The driver's last drop-off must be done by then; after shift_start."
    )
    start: Location = Field(description="Where the driver starts the day.")
    capabilities: tuple[Id, ...] = Field(
        default=(), description="What the vehicle offers, e.g. `wheelchair`."
    )
    max_rides: int | None = Field(
        default=None, ge=0, description="Optional cap on rides; null for no cap."
    )

    @model_validator(mode="after")
    def _shift_ordered(self) -> Driver:
        if self.shift_end <= self.shift_start:
            raise ValueError(f"driver {self.driver_id}: shift_end must be after shift_start")
        return self


class Booking(FrozenModel):
    """One patient ride: pick up within a time window, drive, drop off."""

    booking_id: Id = Field(description="Unique within the dispatch.")
    pickup: Location = Field(description="Where the patient is picked up.")
    dropoff: Location = Field(description="Where the patient is dropped off.")
    pickup_earliest: AwareDatetime = Field(description="Pickup window opens.")
    pickup_latest: AwareDatetime = Field(
        description="Pickup window closes; not before pickup_earliest."
    )
    service_minutes: float = Field(
        default=5.0, ge=0.0, le=240.0, description="Boarding and alighting time, minutes."
    )
    priority: int = Field(
        default=0,
        ge=0,
        le=9,
        description="0 normal; at or above the service's `high_priority` setting a booking "
        "may not become late.",
    )
    requirements: tuple[Id, ...] = Field(
        default=(), description="Capabilities the driver must have, e.g. `wheelchair`."
    )
    locked: bool = Field(default=False, description="True: the optimizer must not move it.")

    @model_validator(mode="after")
    def _window_ordered(self) -> Booking:
        if self.pickup_latest < self.pickup_earliest:
            raise ValueError(
                f"booking {self.booking_id}: pickup_latest must not be before pickup_earliest"
            )
        return self


class Assignment(FrozenModel):
    """Booking -> driver."""

    booking_id: Id = Field(description="A booking of the dispatch.")
    driver_id: Id = Field(description="A driver of the dispatch.")


class HeuristicDone(FrozenModel):
    """The upstream dispatch system's result for one company and service date.

    `travel_time_matrix`, when given, is in seconds over the nodes
    `[driver starts in `drivers` order] + [pickup, dropoff of each booking in `bookings` order]`,
    so it is square of side `len(drivers) + 2 * len(bookings)`.
    """

    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Version of this contract."
    )
    event_id: Id = Field(description="Unique per event; outputs derive their ids from it.")
    dispatch_id: Id = Field(description="The dispatch (also the Kafka message key).")
    company_id: Id = Field(description="The transport company.")
    service_date: date = Field(description="The day the rides happen.")
    mode: Mode = Field(
        default="auto", description="Dispatch mode; only the configured modes are optimized."
    )
    produced_at: AwareDatetime = Field(description="When the upstream system produced it.")
    drivers: tuple[Driver, ...] = Field(
        min_length=1, description="Drivers on duty; ids unique; at most the size limit."
    )
    bookings: tuple[Booking, ...] = Field(
        default=(), description="Bookings of the day; ids unique; at most the size limit."
    )
    assignments: tuple[Assignment, ...] = Field(
        default=(),
        description="The heuristic's plan: each booking at most once; unassigned allowed.",
    )
    travel_time_matrix: tuple[tuple[float, ...], ...] | None = Field(
        default=None,
        description="Optional seconds between nodes (driver starts, then pickup and dropoff "
        "of each booking); null: travel times come from the configured model.",
    )

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

    @model_validator(mode="after")
    def _sane(self, info: ValidationInfo) -> HeuristicDone:
        # Well-formed but absurd input (a window in year 9999, a pickup on another continent,
        # a day with nothing to dispatch) would be "optimized" into nonsense: refuse it with a
        # named reason (the error type), which the dead letter carries.
        limits = _limits(info)
        if not self.bookings:
            raise PydanticCustomError("empty_day", "the day has no bookings: nothing to dispatch")
        day = self.service_date
        ahead = (day - self.produced_at.date()).days
        if not (
            limits.min_year <= day.year <= limits.max_year and abs(ahead) <= limits.horizon_days
        ):
            raise PydanticCustomError(
                "service_date_out_of_range",
                "service_date {day} is not in the years {lo}-{hi} within {h} days of "
                "produced_at {at}",
                {
                    "day": day.isoformat(),
                    "lo": limits.min_year,
                    "hi": limits.max_year,
                    "h": limits.horizon_days,
                    "at": self.produced_at.isoformat(),
                },
            )
        slack = timedelta(days=limits.window_days)
        try:
            first = datetime.combine(self.service_date, time.min, tzinfo=UTC) - slack
        except OverflowError:  # a service date in year 1
            first = datetime.min.replace(tzinfo=UTC)
        try:
            last = datetime.combine(self.service_date, time.max, tzinfo=UTC) + slack
        except OverflowError:  # ... or in year 9999
            last = datetime.max.replace(tzinfo=UTC)
        checks = (
            (
                "window_out_of_range",
                "bookings",
                self.bookings,
                ("pickup_earliest", "pickup_latest"),
            ),
            ("shift_out_of_range", "drivers", self.drivers, ("shift_start", "shift_end")),
        )
        # Comparing aware datetimes asks each side's utcoffset (most of this validator's
        # time): a POSIX timestamp (one offset) decides the many well inside the range; only
        # one within a second of either end (float rounding is microseconds at most) or that
        # has no timestamp takes the exact comparison.
        inside_from, inside_to = first.timestamp() + 1.0, last.timestamp() - 1.0
        for code, field, items, names in checks:
            for i, item in enumerate(items):
                for name in names:
                    at: datetime = getattr(item, name)
                    try:
                        if inside_from < at.timestamp() < inside_to:
                            continue
                    except (OverflowError, ValueError, OSError):
                        pass
                    if not first <= at <= last:
                        raise PydanticCustomError(
                            code,
                            field + "[{i}].{name}: {at} is not within {days} days of the "
                            "service date {day}",
                            {
                                "i": i,
                                "name": name,
                                "at": at.isoformat(),
                                "days": limits.window_days,
                                "day": self.service_date.isoformat(),
                            },
                        )
        _check_spread(self, limits.max_radius_km)
        return self


_EARTH_KM = 6371.0088


def _check_spread(day: HeuristicDone, radius_km: float) -> None:
    places = [("drivers", i, "start", d.start) for i, d in enumerate(day.drivers)]
    for i, b in enumerate(day.bookings):
        places += [("bookings", i, "pickup", b.pickup), ("bookings", i, "dropoff", b.dropoff)]
    lats = sorted(p[3].lat for p in places)
    lons = sorted(p[3].lon for p in places)
    centre = Location(lat=lats[len(lats) // 2], lon=lons[len(lons) // 2])
    # Fast path: the great-circle distance is at most the way along the meridian then along
    # the parallel, R * (|dlat| + cos(lat) * |dlon|) <= R * (|dlat| + |dlon|) (radians; a plain
    # longitude difference is never less than the real one). When even that bound holds for the
    # day's extreme coordinates, no place is too far and the haversines are not needed.
    dlat = max(centre.lat - lats[0], lats[-1] - centre.lat)
    dlon = max(centre.lon - lons[0], lons[-1] - centre.lon)
    if _EARTH_KM * math.radians(dlat + dlon) <= radius_km:
        return
    for what, i, name, loc in places:
        km = _haversine_km(centre, loc)
        if km > radius_km:
            raise PydanticCustomError(
                "coordinates_too_spread",
                "{what}[{i}].{name}: ({lat}, {lon}) is {km} km from the day's median place "
                "({clat}, {clon}); limit {limit} km",
                {
                    "what": what,
                    "i": i,
                    "name": name,
                    "lat": loc.lat,
                    "lon": loc.lon,
                    "km": round(km),
                    "clat": centre.lat,
                    "clon": centre.lon,
                    "limit": radius_km,
                },
            )


def _haversine_km(a: Location, b: Location) -> float:
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


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
