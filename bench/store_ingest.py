"""Audit store benchmark: ingest rate, redelivery rate, and indexed queries vs a full scan.

    python bench/store_ingest.py [--days 400] [--size 30x5] [--pg]

Generates `--days` days, optimizes each with the greedy policy, then, for SQLite (a file in a
temporary directory) and, with `--pg`, a throw-away PostgreSQL server started from Debian's
package (as the tests do):

* ingest: `AuditStore.add` in batches of 25 days (each day: its input, its audits, its
  outcome), as the store consumer does — events/s;
* redelivery: the same batches again (every event a duplicate) — events/s, and rows unchanged;
* queries: median latency of the auditor's questions through the indexes, against the
  baseline of scanning every stored event in Python (what a topic scan has to do, without the
  network), with the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog

from optimizer.dispatch import optimize_event
from optimizer.generate import generate_day
from optimizer.policy import GreedyPolicy
from schemas import SwapAudit
from streams.audit import DispatchRecord, verify
from streams.store import AuditFilter, AuditStore, DispatchFilter

BATCH_DAYS = 25


def _median_ms(fn: Callable[[], Any], repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _bookings(e: Any) -> set[str]:
    return {s.booking_id for s in e.steps} if isinstance(e, SwapAudit) else set()


def _drivers(e: Any) -> set[str]:
    if not isinstance(e, SwapAudit):
        return set()
    return {s.from_driver for s in e.steps} | {s.to_driver for s in e.steps}


def run(url: str, label: str, batches: list[list[Any]]) -> None:
    store = AuditStore.open(url)
    try:
        n_events = sum(len(b) for b in batches)
        t = time.perf_counter()
        for b in batches:
            store.add(b)
        ingest = time.perf_counter() - t
        counts = store.counts()
        t = time.perf_counter()
        for b in batches:
            store.add(b)
        again = time.perf_counter() - t
        assert store.counts() == counts, "redelivery added rows"
        print(f"\n{label}: {counts}")
        print(f"  ingest      {n_events / ingest:8.0f} events/s  ({ingest:.2f} s for {n_events})")
        print(f"  redelivery  {n_events / again:8.0f} events/s  (rows unchanged)")

        audits = [e for b in batches for e, _ in b if isinstance(e, SwapAudit)]
        probe = audits[len(audits) // 2]
        booking, driver = probe.steps[0].booking_id, probe.steps[0].to_driver
        day = next(e for b in batches for e, _ in b if e.dispatch_id == probe.dispatch_id)
        every = [e for b in batches for e, _ in b]
        pid = probe.dispatch_id

        def scan(pred: Callable[[Any], bool]) -> Callable[[], Any]:
            # The baseline: decode every stored event and filter in Python.
            return lambda: [
                e for e in every if pred(type(e).model_validate_json(e.model_dump_json()))
            ]

        questions: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
            (
                "moves touching booking B",
                lambda: store.audits(AuditFilter(booking=booking), limit=500),
                scan(lambda e: booking in _bookings(e)),
            ),
            (
                "moves of driver D on date",
                lambda: store.audits(
                    AuditFilter(driver=driver, service_date=day.service_date), limit=500
                ),
                scan(lambda e: driver in _drivers(e)),
            ),
            (
                "rejected, reason X (page 1)",
                lambda: store.audits(AuditFilter(decision="rejected", reason="no_improvement")),
                scan(lambda e: isinstance(e, SwapAudit) and e.decision == "rejected"),
            ),
            (
                "days served by model M (page 1)",
                lambda: store.dispatches(DispatchFilter(model_version=probe.model_version)),
                scan(lambda e: getattr(e, "model_version", None) == probe.model_version),
            ),
            (
                "replay verdict of one dispatch",
                lambda: verify(DispatchRecord(probe.dispatch_id, *store.dispatch_events(pid))),
                scan(lambda e: e.dispatch_id == probe.dispatch_id),
            ),
        ]  # fmt: skip
        print(f"  {'question':34} {'store p50':>10} {'scan p50':>10} {'ratio':>7}")
        for name, indexed, baseline in questions:
            a, b = _median_ms(indexed), _median_ms(baseline, repeat=3)
            print(f"  {name:34} {a:8.2f}ms {b:8.1f}ms {b / a:6.0f}x")
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--size", default="30x5", help="BOOKINGSxDRIVERS per day")
    parser.add_argument("--pg", action="store_true", help="also a throw-away PostgreSQL")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    n, k = (int(x) for x in args.size.split("x"))
    policy = GreedyPolicy()
    events: list[list[Any]] = []
    for seed in range(args.days):
        day = generate_day(n, k, seed)
        out = optimize_event(day, policy)
        events.append([(day, None), *((a, None) for a in out.audits), (out.optimized, None)])
    batches = [
        [e for d in events[i : i + BATCH_DAYS] for e in d]
        for i in range(0, len(events), BATCH_DAYS)
    ]
    print(f"{args.days} days of {args.size}, batches of {BATCH_DAYS} days")
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/audit.sqlite3", "SQLite (file, WAL, synchronous=FULL)", batches)
    if args.pg:
        from tests.pg_server import create_database, temporary_server

        with temporary_server() as server:
            run(create_database(server), "PostgreSQL 15 (local, fsync off)", batches)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
