"""`dispatch-rl audit`: the replay verdict of one dispatch, or the moves and days matching keys.

* `audit ID`: the dispatch's trail and its replay verdict (exit 0 verified, 1 failed, 2 not
  found), read from the audit store; from the topics when there is no store, or when the store
  does not hold all of the dispatch yet (its consumer lags behind the topics).
* `audit [ID] --booking B --driver D --date YYYY-MM-DD --decision accepted|rejected --reason R
  --model M`: the dispatches and the swap audits matching every key given (exit 0 when
  something matches, 2 when nothing does). Without a store the topics are scanned into a
  throw-away in-memory store and the same queries run on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date
from typing import TYPE_CHECKING, Any, get_args

from schemas.events import Decision, Reason
from streams.settings import Settings

if TYPE_CHECKING:  # the store and the replay load SQLAlchemy and numpy: only when auditing
    from streams.audit import DispatchRecord
    from streams.store import AuditStore, DispatchRow

FILTERS = ("booking", "driver", "date", "decision", "reason", "model")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `audit` command's arguments (besides --json and --timeout)."""
    p.add_argument("dispatch_id", nargs="?", help="the dispatch to replay (or to filter within)")
    p.add_argument("--booking", help="moves and days involving this booking")
    p.add_argument("--driver", help="moves from or to this driver, days where it drives")
    p.add_argument("--date", type=date.fromisoformat, help="service date, YYYY-MM-DD")
    p.add_argument("--decision", choices=get_args(Decision))
    p.add_argument("--reason", choices=get_args(Reason), help="the validator's reason code")
    p.add_argument("--model", help="model version that served")
    p.add_argument("--limit", type=int, default=100, help="most moves listed (default 100)")
    p.add_argument(
        "--topics",
        action="store_true",
        help="read the topics even when an audit store exists",
    )


def audit_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `dispatch-rl audit` (see the module docstring)."""
    from streams.store import AuditStore, default_store_exists, store_url

    filtering = any(getattr(args, f) is not None for f in FILTERS)
    if not filtering and args.dispatch_id is None:
        print("error: give a DISPATCH_ID or a filter (--booking, --driver, --date, "
              "--decision, --reason, --model)", file=sys.stderr)  # fmt: skip
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    store = None
    if default_store_exists(settings) and not args.topics:
        try:
            store = AuditStore.open(store_url(settings))
        except SQLAlchemyError as exc:  # e.g. the PostgreSQL server is down: the topics remain
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
            print(f"warning: audit store unavailable ({first}); reading the topics",
                  file=sys.stderr)  # fmt: skip
    try:
        if filtering:
            if store is None:
                store = _scan_into_memory(settings, args.timeout)
                if store is None:
                    return 1
            return _query(args, store)
        return _verdict(args, settings, store)
    finally:
        if store is not None:
            store.close()


def _verdict(args: argparse.Namespace, settings: Settings, store: AuditStore | None) -> int:
    from optimizer.report import render_outcome
    from streams.audit import DispatchRecord, verify

    record = None
    source = "topics"
    if store is not None:
        inputs, outcomes, audits = store.dispatch_events(args.dispatch_id)
        # The store's consumer may lag behind the topics (it reads three of them at their own
        # pace): use it only once it holds the input, the outcome and as many audits as the
        # outcome proposed; otherwise the topics are the record.
        if inputs and outcomes and len(audits) >= outcomes[-1].moves_proposed:
            record, source = DispatchRecord(args.dispatch_id, inputs, outcomes, audits), "store"
    if record is None:
        record = _fetch_from_topics(settings, args.dispatch_id, args.timeout)
        if record is None:
            return 1
    if not record.inputs and not record.outcomes:
        where = "in the audit store or on the topics" if store is not None else "on the topics"
        print(f"error: dispatch {args.dispatch_id!r} not found {where}", file=sys.stderr)
        return 2
    verdict = verify(record, settings.dispatch_config())
    if args.json:
        doc = {
            "dispatch_id": args.dispatch_id,
            "ok": verdict.ok,
            "problems": list(verdict.problems),
            "proposed": verdict.proposed,
            "accepted": verdict.accepted,
            "source": source,
            "outcome": record.outcomes[-1].model_dump(mode="json") if record.outcomes else None,
            "audits": [a.model_dump(mode="json") for a in record.audits],
        }
        print(json.dumps(doc, indent=2))
    else:
        if record.outcomes:
            print(render_outcome(record.outcomes[-1], record.audits))
        if verdict.ok:
            print(
                f"replay verified: {verdict.accepted} accepted of {verdict.proposed} proposed "
                f"moves reproduce the published assignment, no violation added (from {source})"
            )
        else:
            print("REPLAY FAILED:\n  " + "\n  ".join(verdict.problems))
    return 0 if verdict.ok else 1


def _query(args: argparse.Namespace, store: AuditStore) -> int:
    from streams.store import AuditFilter, DispatchFilter

    days = store.dispatches(
        DispatchFilter(
            dispatch_id=args.dispatch_id,
            booking=args.booking,
            driver=args.driver,
            service_date=args.date,
            model_version=args.model,
        ),
        limit=500,
    )
    moves = store.audits(
        AuditFilter(
            dispatch_id=args.dispatch_id,
            booking=args.booking,
            driver=args.driver,
            service_date=args.date,
            decision=args.decision,
            reason=args.reason,
            model_version=args.model,
        ),
        limit=max(1, args.limit),
    )
    if args.json:
        doc: dict[str, Any] = {
            "dispatches": [_row_json(r) for r in days.items],
            "dispatches_total": days.total,
            "audits": [a.model_dump(mode="json") for a in moves.items],
            "audits_total": moves.total,
        }
        print(json.dumps(doc, indent=2))
    else:
        keys = " ".join(f"{f}={getattr(args, f)}" for f in FILTERS if getattr(args, f) is not None)
        print(f"dispatches matching {keys}: {days.total}")
        for r in days.items:
            print(f"  {_row_line(r)}")
        print(f"moves matching {keys}: {moves.total}" + (
            f" (first {len(moves.items)})" if moves.total > len(moves.items) else ""))  # fmt: skip
        for a in moves.items:
            steps = ", ".join(f"{s.booking_id} {s.from_driver}->{s.to_driver}" for s in a.steps)
            gap = f"gap {a.gap_before} -> {a.gap_after if a.gap_after is not None else '-'}"
            print(
                f"  {a.at:%Y-%m-%d %H:%M} {a.dispatch_id} #{a.sequence:<3} {a.kind:5} {steps}: "
                f"{a.decision} {a.reason}; {gap} model={a.model_version}"
            )
    return 0 if days.total or moves.total else 2


def _row_line(r: DispatchRow) -> str:
    if r.status is None:
        return f"{r.service_date} {r.dispatch_id}: pending ({r.bookings} bookings)"
    return (
        f"{r.service_date} {r.dispatch_id}: {r.status}, gap {r.gap_before} -> {r.gap_after}, "
        f"moves {r.moves_accepted}/{r.moves_proposed}, model={r.model_version}"
    )


def _row_json(r: DispatchRow) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in asdict(r).items()}


def _fetch_from_topics(
    settings: Settings, dispatch_id: str, timeout: float
) -> DispatchRecord | None:
    from streams.audit import fetch_dispatch
    from streams.local_kafka import KafkaLaunchError
    from streams.worker import broker_for

    try:
        # The durable local broker keeps every dispatch: start it (and stop it after) when
        # `run` is not running, so an old dispatch can be audited any time.
        with broker_for(settings) as resolved:
            return asyncio.run(fetch_dispatch(resolved, dispatch_id, timeout=timeout))
    except (RuntimeError, TimeoutError, KafkaLaunchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _scan_into_memory(settings: Settings, timeout: float) -> AuditStore | None:
    """No store: read the three topics once into an in-memory store (linear in their size)."""
    from streams.local_kafka import KafkaLaunchError
    from streams.store import AuditStore
    from streams.worker import broker_for

    store = AuditStore.open("sqlite://")
    try:
        with broker_for(settings) as resolved:
            asyncio.run(_fill(resolved, store, timeout))
    except (RuntimeError, TimeoutError, KafkaLaunchError) as exc:
        store.close()
        print(f"error: {exc}", file=sys.stderr)
        return None
    return store


async def _fill(settings: Settings, store: AuditStore, timeout: float) -> None:
    from streams import codec
    from streams.reader import TopicReader, topic_kinds

    kinds = topic_kinds(settings)
    limits = settings.limits()
    async with TopicReader(settings, *kinds) as reader:
        batch = []
        async for m in reader.snapshot(timeout=timeout):
            decoded = codec.decode_kind(kinds[m.topic], m.value, limits)
            if not isinstance(decoded, list):
                batch.append((decoded, None))
            if len(batch) >= 500:
                store.add(batch)
                batch = []
        store.add(batch)
