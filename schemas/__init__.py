"""dispatch-rl's wire contract: the events on the dispatch topics (pydantic v2, no Kafka)."""

from schemas.asyncapi import render_asyncapi
from schemas.events import (
    DEFAULT_MAX_BOOKINGS,
    DEFAULT_MAX_DRIVERS,
    SCHEMA_VERSION,
    Assignment,
    Booking,
    DeadLetter,
    Driver,
    DriverSchedule,
    ErrorDetail,
    HeuristicDone,
    Limits,
    Location,
    Metrics,
    MetricsPair,
    MoveStep,
    Optimized,
    PlannedRide,
    SwapAudit,
)
from schemas.jsonschema import EVENT_MODELS, render_json_schemas

__all__ = [
    "DEFAULT_MAX_BOOKINGS",
    "DEFAULT_MAX_DRIVERS",
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
