"""One dispatch, end to end without Kafka: `HeuristicDone` in, `Optimized` and audits out.

This is the function the stream agent and the CLI both call. It never raises for a valid
event: whatever goes wrong inside the pass gives status `fallback` with the heuristic
assignment unchanged, so a dispatch is never lost.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import structlog

from optimizer.adapter import (
    AuditMemo,
    assignment_rows,
    counts_metrics,
    metrics,
    schedule_rows,
    swap_audit,
)
from optimizer.feasibility import RouteSchedule, schedule_all
from optimizer.objective import Evaluation, count_gap, evaluate
from optimizer.problem import IntArray, Problem, Rules
from optimizer.swap_pass import (
    CheckedMove,
    MovePolicy,
    PassConfig,
    PassResult,
    StopReason,
    run_pass,
)
from optimizer.travel import TravelModel
from schemas import HeuristicDone, MetricsPair, Optimized, SwapAudit

log = structlog.get_logger("dispatch_rl.optimizer")
_NAMESPACE = uuid.UUID("5b0c6f7e-3d0e-4c52-9a63-8f1d2d8f0a11")


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """What the service decides per dispatch (built from the settings at the edge)."""

    enabled: bool = True
    """False passes every dispatch through unchanged (status `disabled`)."""
    modes: frozenset[str] = frozenset({"auto"})
    """Dispatch modes that are optimized; others pass through (status `skipped_mode`)."""
    pass_config: PassConfig = field(default_factory=PassConfig)
    rules: Rules = field(default_factory=Rules)
    travel: TravelModel = field(default_factory=TravelModel)


@dataclass(frozen=True, slots=True)
class Outcome:
    optimized: Optimized
    audits: tuple[SwapAudit, ...]
    result: PassResult | None = None


def optimized_event_id(source_event_id: str) -> str:
    """Deterministic: a redelivered input yields the same output id (dedupe downstream)."""
    return _uuid5(f"{source_event_id}/optimized")


def audit_event_id(source_event_id: str, sequence: int) -> str:
    return _uuid5(f"{source_event_id}/audit/{sequence}")


_NAMESPACE_SHA1 = hashlib.sha1(_NAMESPACE.bytes)


def _uuid5(name: str) -> str:
    """`str(uuid.uuid5(_NAMESPACE, name))`, the same string: the namespace's hash state is
    kept and the UUID formatted from the digest (`uuid.UUID` costs more than the hash; this
    runs for every event of every dispatch)."""
    h = _NAMESPACE_SHA1.copy()
    h.update(name.encode())
    d = bytearray(h.digest()[:16])
    d[6] = (d[6] & 0x0F) | 0x50  # version 5
    d[8] = (d[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = d.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def optimize_event(
    event: HeuristicDone,
    policy: MovePolicy,
    config: DispatchConfig | None = None,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Outcome:
    """Run the swap pass on one dispatch day and encode the result as events."""
    config = config or DispatchConfig()
    started = time.perf_counter()
    bound = log.bind(dispatch_id=event.dispatch_id, event_id=event.event_id)
    try:
        problem, upstream = Problem.from_event(
            event, travel_model=config.travel, rules=config.rules
        )
    except Exception as exc:  # the pass never loses a dispatch
        bound.exception("problem_build_failed")
        return _fallback(event, exc, policy, started, now)
    passthrough = (
        ("disabled", "optimizer disabled by configuration")
        if not config.enabled
        else ("skipped_mode", f"mode {event.mode!r} is not optimized")
        if event.mode not in config.modes
        else None
    )
    if passthrough is not None:
        return _unchanged_or_fallback(event, problem, upstream, *passthrough, policy, started, now)
    info = _info_enabled(bound)  # log lines' fields are not computed when not logged
    try:
        # The pass evaluates the upstream plan itself (`result.before`): not done twice here.
        if info:
            rides = np.bincount(upstream[upstream >= 0], minlength=problem.n_drivers)
            bound.info(
                "pass_started",
                bookings=problem.n_bookings,
                drivers=problem.n_drivers,
                initial_gap=count_gap(rides),
                rides=rides.tolist(),
                model_version=policy.version,
            )
        result = run_pass(problem, upstream, policy, config.pass_config)
        if info:
            _log_moves(bound, problem, result)
    except Exception as exc:
        bound.exception("pass_failed_fallback")
        reason = f"error: {type(exc).__name__}: {exc}"
        return _unchanged_or_fallback(
            event, problem, upstream, "fallback", reason, policy, started, now
        )
    before = result.before
    status = "optimized" if result.accepted else "unchanged"
    reason = f"{result.stop_reason}; gap {result.before.gap} -> {result.after.gap}"
    if info:
        bound.info(
            "pass_finished",
            status=status,
            stop=result.stop_reason,
            gap_before=before.gap,
            validator_checks=result.validator_checks,
            gap_after=result.after.gap,
            steps=result.steps,
            proposed=len(result.checked),
            accepted=len(result.accepted),
            elapsed_ms=round(result.elapsed_s * 1000, 2),
        )
    at = now()
    memo = AuditMemo()
    audits = tuple(_audit(event, problem, c, policy.version, at, memo) for c in result.checked)
    optimized = _optimized(
        event,
        problem,
        result.assignment,
        before,
        result.after,
        status,
        reason,
        policy.version,
        len(result.checked),
        len(result.accepted),
        started,
        at,
        stop_reason=result.stop_reason,
        routes=list(result.schedules) or None,
    )
    return Outcome(optimized, audits, result)


def _fallback(
    event: HeuristicDone,
    exc: BaseException,
    policy: MovePolicy,
    started: float,
    now: Callable[[], datetime],
) -> Outcome:
    return fallback_outcome(
        event, f"error: {type(exc).__name__}: {exc}", policy.version, started=started, now=now
    )


def _unchanged_or_fallback(
    event: HeuristicDone,
    problem: Problem,
    upstream: IntArray,
    status: str,
    reason: str,
    policy: MovePolicy,
    started: float,
    now: Callable[[], datetime],
) -> Outcome:
    """The upstream plan unchanged with `status`, or `fallback_outcome` if not even it can be
    scheduled and evaluated."""
    try:
        routes = schedule_all(problem, upstream)
        before = evaluate(routes, int((upstream < 0).sum()))
    except Exception as exc:
        log.exception("problem_build_failed", dispatch_id=event.dispatch_id)
        return _fallback(event, exc, policy, started, now)
    return _unchanged(
        event, problem, upstream, before, status, reason, policy, started, now, routes
    )


# ------------------------------------------------------------------ encoding
# (the event<->domain mapping itself lives in `optimizer.adapter`)


def _optimized(
    event: HeuristicDone,
    problem: Problem,
    assignment: IntArray,
    before: Evaluation,
    after: Evaluation,
    status: str,
    reason: str,
    model_version: str,
    proposed: int,
    accepted: int,
    started: float,
    at: datetime,
    *,
    stop_reason: StopReason | None = None,
    routes: list[RouteSchedule] | None = None,
) -> Optimized:
    """`routes`: the schedules of `assignment` when the caller has them already."""
    if routes is None:
        routes = schedule_all(problem, assignment)
    # One validation of plain rows for the whole plan (a pydantic call per ride and per
    # assignment cost more than the rest of the event): the same models, the same JSON.
    return Optimized.model_validate(
        {
            "event_id": optimized_event_id(event.event_id),
            "dispatch_id": event.dispatch_id,
            "source_event_id": event.event_id,
            "company_id": event.company_id,
            "service_date": event.service_date,
            "status": status,
            "reason": reason,
            "stop_reason": stop_reason,
            "model_version": model_version,
            "assignments": assignment_rows(problem, assignment),
            "schedules": schedule_rows(problem, routes),
            "metrics": MetricsPair(before=metrics(problem, before), after=metrics(problem, after)),
            "moves_proposed": proposed,
            "moves_accepted": accepted,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "produced_at": at,
        }
    )


def _unchanged(
    event: HeuristicDone,
    problem: Problem,
    upstream: IntArray,
    before: Evaluation,
    status: str,
    reason: str,
    policy: MovePolicy,
    started: float,
    now: Callable[[], datetime],
    routes: list[RouteSchedule],
) -> Outcome:
    log.info("passthrough", dispatch_id=event.dispatch_id, status=status, reason=reason)
    return Outcome(
        _optimized(
            event,
            problem,
            upstream,
            before,
            before,
            status,
            reason,
            policy.version,
            0,
            0,
            started,
            now(),
            routes=routes,
        ),
        (),
    )


def fallback_outcome(
    event: HeuristicDone,
    reason: str,
    model_version: str,
    *,
    started: float | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Outcome:
    """Status `fallback` with the upstream assignment, built from the event alone.

    The last resort when not even the problem can be built: no travel model, no schedule,
    only ride counts in the metrics.
    """
    m = counts_metrics(event)
    elapsed = 0.0 if started is None else (time.perf_counter() - started) * 1000
    return Outcome(
        Optimized(
            event_id=optimized_event_id(event.event_id),
            dispatch_id=event.dispatch_id,
            source_event_id=event.event_id,
            company_id=event.company_id,
            service_date=event.service_date,
            status="fallback",
            reason=reason[:2000],
            model_version=model_version,
            assignments=event.assignments,
            schedules=(),
            metrics=MetricsPair(before=m, after=m),
            moves_proposed=0,
            moves_accepted=0,
            latency_ms=round(elapsed, 3),
            produced_at=now(),
        ),
        (),
    )


def _audit(
    event: HeuristicDone,
    problem: Problem,
    c: CheckedMove,
    model_version: str,
    at: datetime,
    memo: AuditMemo | None = None,
) -> SwapAudit:
    return swap_audit(
        audit_event_id(event.event_id, c.sequence), event, problem, c, model_version, at, memo
    )


def _info_enabled(bound: structlog.typing.FilteringBoundLogger) -> bool:
    check = getattr(bound, "is_enabled_for", None)  # structlog's filtering loggers have it
    return True if check is None else bool(check(logging.INFO))


def _log_moves(
    bound: structlog.typing.FilteringBoundLogger, problem: Problem, result: PassResult
) -> None:
    """One line per accepted move, like the original system's log, plus the stop reason."""
    for n, c in enumerate(result.accepted, start=1):
        steps = ", ".join(
            f"{problem.booking_ids[s.booking]} -> {problem.driver_ids[s.to_driver]}"
            for s in c.move.steps
        )
        gap_after = None if c.value_after is None else int(c.value_after[0])
        bound.info(
            "move_accepted",
            n=n,
            budget=result.budget,
            kind=c.move.kind,
            steps=steps,
            gap_before=int(c.value_before[0]),
            gap_after=gap_after,
            delta=None if c.gain is None else round(c.gain, 3),
        )
    if result.stop_reason == "target_reached":
        bound.info("target_reached", gap=result.after.gap)
