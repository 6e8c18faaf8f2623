"""The wire contract's output side: the events the optimizer publishes.

`Optimized` answers one `HeuristicDone`, one `SwapAudit` records each move it checked, and a
`DeadLetter` keeps an input it could not process. The shared types are in `schemas.events`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.events import (
    SCHEMA_VERSION,
    Assignment,
    Decision,
    FrozenModel,
    Id,
    MoveKind,
    Reason,
    Status,
    StopReason,
)


class Metrics(FrozenModel):
    """Fairness and cost of one plan."""

    rides_per_driver: dict[str, int] = Field(description="driver_id -> rides in the plan.")
    gap: int = Field(description="max - min rides per driver, idle drivers included")
    count_sq_dev: float = Field(description="sum of squared deviations of ride counts")
    unfairness: float = Field(description="Timefold load-balance: sqrt(count_sq_dev)")
    workload_minutes: dict[str, float] = Field(
        description="driver_id -> driving and boarding minutes."
    )
    workload_spread_minutes: float = Field(description="max - min of workload_minutes.")
    deadhead_km: float = Field(description="Total empty driving, km.")
    lateness_minutes: float = Field(description="Total minutes picked up after windows closed.")
    violations: int = Field(description="hard-constraint violations (input ones are kept)")
    unassigned: int = Field(default=0, description="Bookings assigned to no driver.")


class PlannedRide(FrozenModel):
    """One ride of a driver's day with its planned times."""

    booking_id: Id = Field(description="The booking served.")
    pickup_at: AwareDatetime = Field(description="Planned pickup.")
    dropoff_at: AwareDatetime = Field(description="Planned drop-off.")
    late_minutes: float = Field(default=0.0, description="Minutes after the window closed.")


class DriverSchedule(FrozenModel):
    """A driver's rides in the order served."""

    driver_id: Id = Field(description="The driver.")
    rides: tuple[PlannedRide, ...] = Field(description="Rides in pickup order.")


class MetricsPair(FrozenModel):
    """The plan's metrics before and after the optimizer."""

    before: Metrics = Field(description="The heuristic input's plan.")
    after: Metrics = Field(description="The published plan.")


class Optimized(FrozenModel):
    """The optimizer's result for one `HeuristicDone`: always feasible, never worse.

    Published after every `SwapAudit` of the same dispatch is acknowledged.
    """

    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Version of this contract."
    )
    event_id: Id = Field(description="deterministic from source_event_id")
    dispatch_id: Id = Field(description="As in the input (also the Kafka message key).")
    source_event_id: Id = Field(description="event_id of the HeuristicDone it answers.")
    company_id: Id = Field(description="As in the input.")
    service_date: date = Field(description="As in the input.")
    status: Status = Field(
        description="optimized: moves were accepted; unchanged: none improved; fallback: "
        "the pass failed and the heuristic plan stands; disabled / skipped_mode: not run."
    )
    reason: str = Field(default="", description="Human-readable why of the status.")
    stop_reason: StopReason | None = Field(
        default=None,
        description=(
            "Why the swap pass stopped: target_reached (the ride-count gap is at its floor), "
            "no_improving_move (no move, swap, chain, exchange or lookahead improves), budget "
            "(move budget spent), time_limit; null when no pass ran (disabled, skipped_mode, "
            "fallback)."
        ),
    )
    model_version: str = Field(description="The policy that ranked the moves (or greedy).")
    assignments: tuple[Assignment, ...] = Field(description="The published plan.")
    schedules: tuple[DriverSchedule, ...] = Field(
        description="Per-driver rides with planned times; empty on a last-resort fallback."
    )
    metrics: MetricsPair = Field(description="The plan before and after.")
    moves_proposed: int = Field(
        ge=0, description="Moves checked by the validator (one SwapAudit each)."
    )
    moves_accepted: int = Field(ge=0, description="Moves applied.")
    latency_ms: float = Field(ge=0.0, description="Time spent on this dispatch, ms.")
    produced_at: AwareDatetime = Field(description="When the optimizer produced it.")


class MoveStep(FrozenModel):
    """One booking changing driver (a swap or chain has several)."""

    booking_id: Id = Field(description="The booking moved.")
    from_driver: Id = Field(description="Its driver before the move.")
    to_driver: Id = Field(description="Its driver after the move.")


class SwapAudit(FrozenModel):
    """One move the optimizer checked, accepted or rejected, with its machine-readable reason."""

    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Version of this contract."
    )
    event_id: Id = Field(description="deterministic: source event id + sequence")
    dispatch_id: Id = Field(description="As in the input (also the Kafka message key).")
    source_event_id: Id = Field(description="event_id of the HeuristicDone being optimized.")
    sequence: int = Field(ge=0, description="Order of the check within the dispatch.")
    kind: MoveKind = Field(
        description="move: one booking to another driver; swap: two bookings trade drivers; "
        "chain: a short ejection chain; compound: several steps validated as one unit (a "
        "segment exchange between two drivers, or a lookahead's plateau steps and the "
        "improving step after them), listed in order."
    )
    steps: tuple[MoveStep, ...] = Field(min_length=1, description="Every booking it moves.")
    score: float | None = Field(description="policy score (Q-value for the DQN)")
    objective_before: tuple[float, ...] = Field(
        description="Objective vector before (gap, count_sq_dev, workload spread, deadhead "
        "km, lateness minutes)."
    )
    objective_after: tuple[float, ...] | None = Field(
        description="Objective vector had the move been applied; null when infeasible."
    )
    gap_before: int = Field(description="Ride-count gap before.")
    gap_after: int | None = Field(description="Ride-count gap after; null when infeasible.")
    delta: float | None = Field(description="gain on the first objective component that changed")
    decision: Decision = Field(description="Whether the move was applied.")
    reason: Reason = Field(
        description="improves when accepted; else the hard constraint it breaks (time_window "
        "/ priority also when a booking would be later than max(its input lateness, the "
        "tolerance)), why the gain did not suffice, or revisit (it would return to a plan "
        "the pass already visited)."
    )
    detail: str = Field(default="", description="Human-readable detail of the reason.")
    model_version: str = Field(description="The policy that proposed it.")
    at: AwareDatetime = Field(description="When it was checked.")


class ErrorDetail(FrozenModel):
    """One validation error (pydantic's location, message and type)."""

    loc: tuple[str | int, ...] = Field(default=(), description="Path to the offending field.")
    msg: str = Field(description="What is wrong.")
    type: str = Field(description="Machine-readable error type, e.g. `missing`.")


class DeadLetter(FrozenModel):
    """Input that could not be processed: the original (or, when too large, a prefix with its
    size and hash; the whole stays on the input topic at the source position) and why."""

    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Version of this contract."
    )
    event_id: Id = Field(description="Deterministic from the source topic, partition, offset.")
    source_topic: str = Field(description="Topic of the bad message.")
    source_partition: int = Field(description="Its partition.")
    source_offset: int = Field(description="Its offset.")
    key_b64: str | None = Field(
        default=None, description="Its key, base64 (the first 4 KiB if longer); null if none."
    )
    value_b64: str = Field(
        description="The original value bytes, base64: verbatim, or only a prefix when "
        "`value_truncated` (the whole would not fit under the topic's size limit)."
    )
    value_size: int | None = Field(
        default=None, ge=0, description="Size in bytes of the original value; null if none."
    )
    value_sha256: str | None = Field(
        default=None, description="Hex sha256 of the whole original value; null if none."
    )
    value_truncated: bool = Field(
        default=False,
        description="True when `value_b64` holds only a prefix; the whole original stays on "
        "the input topic at source_topic/source_partition/source_offset.",
    )
    reason: str = Field(
        default="invalid", description="Machine-readable reason: the `type` of the first error."
    )
    errors: tuple[ErrorDetail, ...] = Field(
        min_length=1, description="Why it was refused (the first 100 when there are more)."
    )
    errors_total: int | None = Field(
        default=None, ge=1, description="How many errors were found in all."
    )
    at: datetime = Field(description="When it was dead-lettered.")
