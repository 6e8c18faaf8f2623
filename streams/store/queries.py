"""The audit store's read side: filters, pages, and the queries behind the API and the CLI.

Filters combine with AND; every one of them is served by an index (tables.py). Pages are
`limit`/`offset` with the total count, in a stable order (ties broken by event id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, func, select
from sqlalchemy.engine import Connection

from schemas import HeuristicDone, Limits, Optimized, SwapAudit
from streams.store.tables import audits, inputs, outcomes, refs

T = TypeVar("T")
MAX_LIMIT = 500
_STORED = Limits(max_bookings=2**31, max_drivers=2**31).context()
"""Stored inputs passed the worker's size limits once; a later, stricter limit must not make
them unreadable."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results and where it sits in the whole."""

    items: list[T]
    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        """Offset of the next page, None on the last one."""
        end = self.offset + len(self.items)
        return end if end < self.total else None


@dataclass(frozen=True, slots=True)
class DispatchFilter:
    """Which dispatches (stored inputs) to list; None means any."""

    dispatch_id: str | None = None
    booking: str | None = None
    driver: str | None = None
    service_date: date | None = None
    company_id: str | None = None
    status: str | None = None
    """The outcome's status (`optimized`, `unchanged`, `fallback`, ...); `pending`: none yet."""
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which swap audits to list; None means any."""

    dispatch_id: str | None = None
    booking: str | None = None
    driver: str | None = None
    service_date: date | None = None
    decision: str | None = None
    reason: str | None = None
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class DispatchRow:
    """One stored input and the summary of its outcome (None fields: not optimized yet)."""

    dispatch_id: str
    event_id: str
    company_id: str
    service_date: date
    mode: str
    bookings: int
    drivers: int
    produced_at: datetime
    stored_at: datetime
    status: str | None
    reason: str | None
    model_version: str | None
    gap_before: int | None
    gap_after: int | None
    deadhead_km_before: float | None
    deadhead_km_after: float | None
    lateness_minutes_before: float | None
    lateness_minutes_after: float | None
    moves_proposed: int | None
    moves_accepted: int | None
    latency_ms: float | None
    optimized_at: datetime | None


def _referring(ref: str, ref_id: str, kind: str) -> Any:
    """Event ids of `kind` filed under booking/driver `ref_id`."""
    return select(refs.c.event_id).where(
        and_(refs.c.ref == ref, refs.c.ref_id == ref_id, refs.c.kind == kind)
    )


def _page(conn: Connection, query: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    limit = max(1, min(limit, MAX_LIMIT))
    total = conn.execute(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = list(conn.execute(query.limit(limit).offset(max(0, offset))).all())
    return rows, int(total.scalar_one())


def list_dispatches(
    conn: Connection, where: DispatchFilter, limit: int, offset: int
) -> Page[DispatchRow]:
    """Stored inputs joined with their outcome, most recently stored first."""
    o = outcomes.c
    query = select(
        inputs.c.dispatch_id,
        inputs.c.event_id,
        inputs.c.company_id,
        inputs.c.service_date,
        inputs.c.mode,
        inputs.c.n_bookings,
        inputs.c.n_drivers,
        inputs.c.produced_at,
        inputs.c.stored_at,
        o.status,
        o.reason,
        o.model_version,
        o.gap_before,
        o.gap_after,
        o.deadhead_km_before,
        o.deadhead_km_after,
        o.lateness_minutes_before,
        o.lateness_minutes_after,
        o.moves_proposed,
        o.moves_accepted,
        o.latency_ms,
        o.produced_at.label("optimized_at"),
    ).select_from(inputs.outerjoin(outcomes, o.source_event_id == inputs.c.event_id))
    conds: list[Any] = []
    if where.dispatch_id is not None:
        conds.append(inputs.c.dispatch_id == where.dispatch_id)
    if where.booking is not None:
        conds.append(inputs.c.event_id.in_(_referring("booking", where.booking, "heuristic_done")))
    if where.driver is not None:
        conds.append(inputs.c.event_id.in_(_referring("driver", where.driver, "heuristic_done")))
    if where.service_date is not None:
        conds.append(inputs.c.service_date == where.service_date)
    if where.company_id is not None:
        conds.append(inputs.c.company_id == where.company_id)
    if where.status == "pending":
        conds.append(o.event_id.is_(None))
    elif where.status is not None:
        conds.append(o.status == where.status)
    if where.model_version is not None:
        conds.append(o.model_version == where.model_version)
    query = query.where(and_(*conds)) if conds else query
    query = query.order_by(inputs.c.stored_at.desc(), inputs.c.event_id.desc())
    rows, total = _page(conn, query, limit, offset)
    return Page([DispatchRow(*r) for r in rows], total, max(1, min(limit, MAX_LIMIT)), offset)


def audits_query(where: AuditFilter) -> Select[Any]:
    """The swap audits matching `where`: a dispatch's in sequence order, else newest first."""
    a = audits.c
    query = select(a.payload)
    conds: list[Any] = []
    if where.dispatch_id is not None:
        conds.append(a.dispatch_id == where.dispatch_id)
    if where.booking is not None:
        conds.append(a.event_id.in_(_referring("booking", where.booking, "swap_audit")))
    if where.driver is not None:
        conds.append(a.event_id.in_(_referring("driver", where.driver, "swap_audit")))
    if where.service_date is not None:
        days = select(inputs.c.event_id).where(inputs.c.service_date == where.service_date)
        conds.append(a.source_event_id.in_(days))
    if where.decision is not None:
        conds.append(a.decision == where.decision)
    if where.reason is not None:
        conds.append(a.reason == where.reason)
    if where.model_version is not None:
        conds.append(a.model_version == where.model_version)
    query = query.where(and_(*conds)) if conds else query
    if where.dispatch_id is not None:
        return query.order_by(a.source_event_id, a.sequence)
    return query.order_by(a.at.desc(), a.event_id)


def list_audits(conn: Connection, where: AuditFilter, limit: int, offset: int) -> Page[SwapAudit]:
    rows, total = _page(conn, audits_query(where), limit, offset)
    items = [SwapAudit.model_validate_json(r.payload) for r in rows]
    return Page(items, total, max(1, min(limit, MAX_LIMIT)), offset)


def dispatch_events(
    conn: Connection, dispatch_id: str
) -> tuple[list[HeuristicDone], list[Optimized], list[SwapAudit]]:
    """Every stored event of one dispatch: inputs and outcomes oldest first, audits in order."""
    ins = conn.execute(
        select(inputs.c.payload)
        .where(inputs.c.dispatch_id == dispatch_id)
        .order_by(inputs.c.produced_at, inputs.c.event_id)
    )
    outs = conn.execute(
        select(outcomes.c.payload)
        .where(outcomes.c.dispatch_id == dispatch_id)
        .order_by(outcomes.c.produced_at, outcomes.c.event_id)
    )
    logs = conn.execute(audits_query(AuditFilter(dispatch_id=dispatch_id)))
    return (
        [HeuristicDone.model_validate_json(r.payload, context=_STORED) for r in ins],
        [Optimized.model_validate_json(r.payload) for r in outs],
        [SwapAudit.model_validate_json(r.payload) for r in logs],
    )
