"""dispatch-rl's wire contract: the events on the dispatch topics (pydantic v2, no Kafka)."""

from schemas.asyncapi import render_asyncapi
from schemas.events import (
    DEFAULT_MAX_BOOKINGS,
    DEFAULT_MAX_DRIVERS,
    DEFAULT_MAX_RADIUS_KM,
    DEFAULT_WINDOW_DAYS,
    SCHEMA_VERSION,
    Assignment,
    Booking,
    Driver,
    HeuristicDone,
    Limits,
    Location,
)
from schemas.jsonschema import EVENT_MODELS, render_json_schemas
from schemas.results import (
    DeadLetter,
    DriverSchedule,
    ErrorDetail,
    Metrics,
    MetricsPair,
    MoveStep,
    Optimized,
    PlannedRide,
    SwapAudit,
)

__all__ = [
    "DEFAULT_MAX_BOOKINGS",
    "DEFAULT_MAX_DRIVERS",
    "DEFAULT_MAX_RADIUS_KM",
    "DEFAULT_WINDOW_DAYS",
    "EVENT_MODELS",
    "SCHEMA_VERSION",
    "Assignment",
    "Booking",
    "DeadLetter",
    "Driver",
    "DriverSchedule",
    "ErrorDetail",
    "HeuristicDone",
    "Limits",
    "Location",
    "Metrics",
    "MetricsPair",
    "MoveStep",
    "Optimized",
    "PlannedRide",
    "SwapAudit",
    "render_asyncapi",
    "render_json_schemas",
]
