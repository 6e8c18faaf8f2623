"""The audit query API (`/api/...`): dispatches, swap audits and replay verdicts from the store.

Every route requires the API token (`streams.web.auth`). Lists take `limit` (1-500) and
`offset` and answer with `total` and `next_offset`. The verdict is computed by the same
`streams.audit.verify` as `dispatch-rl audit ID`, on the events the store holds.
Routes are plain `def`s: FastAPI runs them in its thread pool, off the worker's event loop.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict

from schemas import HeuristicDone, Optimized, SwapAudit
from schemas.events import Decision, Reason, Status
from streams.audit import DispatchRecord, verify
from streams.store.queries import MAX_LIMIT, AuditFilter, DispatchFilter, DispatchRow, Page
from streams.store.store import AuditStore
from streams.web.auth import context_of, require_token

router = APIRouter(prefix="/api", tags=["audit"], dependencies=[Depends(require_token)])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Offset = Annotated[int, Query(ge=0, description="rows to skip (use next_offset)")]
Id = Annotated[str, Path(min_length=1, max_length=128)]


class DispatchSummary(BaseModel):
    """One stored input and its outcome's summary (outcome fields are null while pending)."""

    model_config = ConfigDict(from_attributes=True)

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


class DispatchPage(BaseModel):
    items: list[DispatchSummary]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class AuditPage(BaseModel):
    items: list[SwapAudit]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class DispatchDetail(BaseModel):
    """Everything the store holds for one dispatch id; `outcome` is the latest `Optimized`."""

    dispatch_id: str
    inputs: list[HeuristicDone]
    outcome: Optimized | None
    outcomes: list[Optimized]
    audits: list[SwapAudit]


class VerdictOut(BaseModel):
    """The replay verdict, as `dispatch-rl audit ID --json` prints it."""

    dispatch_id: str
    ok: bool
    problems: list[str]
    proposed: int
    accepted: int


class BookingHistory(BaseModel):
    """What happened to one booking: the dispatch days that held it and every move touching it."""

    booking_id: str
    dispatches: list[DispatchSummary]
    audits: list[SwapAudit]


def _store(request: Request) -> AuditStore:
    store = context_of(request).store
    if store is None:
        raise HTTPException(503, "this worker runs no audit store (DISPATCH_RL_STORE_ENABLED)")
    return store


def _dispatch_page(page: Page[DispatchRow]) -> DispatchPage:
    items = [DispatchSummary.model_validate(r) for r in page.items]
    return DispatchPage(
        items=items,
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        next_offset=page.next_offset,
    )


@router.get("/dispatches", response_model=DispatchPage)
def list_dispatches(
    request: Request,
    booking: str | None = None,
    driver: str | None = None,
    service_date: date | None = None,
    company_id: str | None = None,
    status: Status | Literal["pending"] | None = None,
    model_version: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> DispatchPage:
    """Dispatches (one per stored input), most recently stored first."""
    where = DispatchFilter(
        booking=booking,
        driver=driver,
        service_date=service_date,
        company_id=company_id,
        status=status,
        model_version=model_version,
    )
    return _dispatch_page(_store(request).dispatches(where, limit=limit, offset=offset))


@router.get("/dispatches/{dispatch_id}", response_model=DispatchDetail)
def get_dispatch(request: Request, dispatch_id: Id) -> DispatchDetail:
    """The dispatch's inputs, outcomes and swap log (404 if the store has none of them)."""
    inputs, outcomes, audits = _store(request).dispatch_events(dispatch_id)
    if not inputs and not outcomes:
        raise HTTPException(404, f"dispatch {dispatch_id!r} is not in the audit store")
    return DispatchDetail(
        dispatch_id=dispatch_id,
        inputs=inputs,
        outcome=outcomes[-1] if outcomes else None,
        outcomes=outcomes,
        audits=audits,
    )


@router.get("/dispatches/{dispatch_id}/verdict", response_model=VerdictOut)
def get_verdict(request: Request, dispatch_id: Id) -> VerdictOut:
    """Replay the accepted moves on the input and compare with the published outcome."""
    inputs, outcomes, audits = _store(request).dispatch_events(dispatch_id)
    if not inputs and not outcomes:
        raise HTTPException(404, f"dispatch {dispatch_id!r} is not in the audit store")
    config = context_of(request).settings.dispatch_config()
    v = verify(DispatchRecord(dispatch_id, inputs, outcomes, audits), config)
    return VerdictOut(
        dispatch_id=dispatch_id,
        ok=v.ok,
        problems=list(v.problems),
        proposed=v.proposed,
        accepted=v.accepted,
    )


@router.get("/audits", response_model=AuditPage)
def list_audits(
    request: Request,
    dispatch_id: str | None = None,
    booking: str | None = None,
    driver: str | None = None,
    service_date: date | None = None,
    decision: Decision | None = None,
    reason: Reason | None = None,
    model_version: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> AuditPage:
    """Swap audits (proposed moves, accepted or rejected): one dispatch's in sequence order,
    otherwise newest first."""
    where = AuditFilter(
        dispatch_id=dispatch_id,
        booking=booking,
        driver=driver,
        service_date=service_date,
        decision=decision,
        reason=reason,
        model_version=model_version,
    )
    page = _store(request).audits(where, limit=limit, offset=offset)
    return AuditPage(
        items=page.items,
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        next_offset=page.next_offset,
    )


@router.get("/bookings/{booking_id}", response_model=BookingHistory)
def booking_history(request: Request, booking_id: Id) -> BookingHistory:
    """Every stored day that held the booking and every move that touched it (first 500)."""
    store = _store(request)
    days = store.dispatches(DispatchFilter(booking=booking_id), limit=MAX_LIMIT)
    moves = store.audits(AuditFilter(booking=booking_id), limit=MAX_LIMIT)
    return BookingHistory(
        booking_id=booking_id,
        dispatches=[DispatchSummary.model_validate(r) for r in days.items],
        audits=moves.items,
    )
