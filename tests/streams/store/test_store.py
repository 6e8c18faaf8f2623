"""The audit store on SQLite and on a real PostgreSQL server: one row per event id, every
index key answers, pages are exact, the replay verdict from the store equals the topics'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from optimizer.dispatch import Outcome
from schemas import HeuristicDone
from streams.audit import DispatchRecord, verify
from streams.settings import Settings
from streams.store import AuditFilter, AuditStore, DispatchFilter, Source
from streams.store.migrate import alembic_config, current, head
from streams.store.store import consumer_group
from streams.store.tables import metadata

Days = list[tuple[HeuristicDone, Outcome]]


def _events(days: Days) -> list[tuple[Any, Source | None]]:
    out: list[tuple[Any, Source | None]] = []
    for n, (day, outcome) in enumerate(days):
        out.append((day, Source("in", 0, n)))
        out.extend((a, None) for a in outcome.audits)
        out.append((outcome.optimized, Source("out", 0, n)))
    return out


def test_migrations_build_exactly_the_declared_schema(store: AuditStore) -> None:
    """After `open`, the database is at the newest revision and matches tables.py."""
    assert current(store.engine) == head() == "0002"
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_each_event_is_one_row_across_redelivery(
    store: AuditStore, days_and_outcomes: Days
) -> None:
    """Adding the same events twice (and in another order) stores each once; only the first
    add reports the new Optimized events (so a redelivery is never announced twice)."""
    events = _events(days_and_outcomes)
    new = store.add(events)
    assert [o.event_id for o in new] == [o.optimized.event_id for _, o in days_and_outcomes]
    first = store.counts()
    assert first == {
        "heuristic_done": 3,
        "optimized": 3,
        "swap_audit": sum(len(o.audits) for _, o in days_and_outcomes),
    }
    assert store.add(list(reversed(events))) == []
    assert store.counts() == first


def test_rows_survive_a_restart(tmp_path: Path, days_and_outcomes: Days) -> None:
    """Close and reopen the SQLite file: rows are there, the migration is a no-op, and a
    redelivery after the restart still adds nothing."""
    url = f"sqlite:///{tmp_path / 'a.sqlite3'}"
    s = AuditStore.open(url)
    s.add(_events(days_and_outcomes))
    before = s.counts()
    s.close()
    s = AuditStore.open(url)
    try:
        assert s.counts() == before
        assert s.add(_events(days_and_outcomes)) == []
        assert s.counts() == before
    finally:
        s.close()


def test_queries_by_every_key(store: AuditStore, days_and_outcomes: Days) -> None:
    """Dispatch, booking, driver, service date, status, model version, decision and reason."""
    store.add(_events(days_and_outcomes))
    day, outcome = days_and_outcomes[1]
    # by dispatch
    page = store.dispatches(DispatchFilter(dispatch_id=day.dispatch_id))
    assert [r.event_id for r in page.items] == [day.event_id]
    row = page.items[0]
    assert (
        row.status == outcome.optimized.status
        and row.gap_after == outcome.optimized.metrics.after.gap
    )
    # by booking: the day that holds it, and exactly the audits whose moves touch it
    booking = outcome.audits[0].steps[0].booking_id
    assert [r.dispatch_id for r in store.dispatches(DispatchFilter(booking=booking)).items] == [
        day.dispatch_id
    ]
    touching = {a.event_id for a in outcome.audits if any(s.booking_id == booking for s in a.steps)}
    got = store.audits(AuditFilter(booking=booking), limit=500)
    assert {a.event_id for a in got.items} == touching and got.total == len(touching)
    # by driver and date together
    driver = outcome.audits[0].steps[0].to_driver
    expected = {
        a.event_id
        for d, o in days_and_outcomes
        if d.service_date == day.service_date
        for a in o.audits
        if any(driver in (s.from_driver, s.to_driver) for s in a.steps)
    }
    got = store.audits(AuditFilter(driver=driver, service_date=day.service_date), limit=500)
    assert {a.event_id for a in got.items} == expected
    assert store.audits(AuditFilter(driver="no-such-driver")).total == 0
    # by service date
    dated = store.dispatches(DispatchFilter(service_date=day.service_date))
    assert day.dispatch_id in {r.dispatch_id for r in dated.items}
    assert all(r.service_date == day.service_date for r in dated.items)
    # by decision and reason
    all_audits = [a for _, o in days_and_outcomes for a in o.audits]
    reason = next(a.reason for a in all_audits if a.decision == "rejected")
    got = store.audits(AuditFilter(decision="rejected", reason=reason), limit=500)
    assert got.total == sum(a.decision == "rejected" and a.reason == reason for a in all_audits)
    # by model version and status
    version = outcome.optimized.model_version
    assert store.dispatches(DispatchFilter(model_version=version)).total == 3
    assert store.dispatches(DispatchFilter(model_version="nope")).total == 0
    assert store.audits(AuditFilter(model_version=version)).total == len(all_audits)
    assert store.dispatches(DispatchFilter(status="pending")).total == 0


def test_pages_cover_everything_once(store: AuditStore, days_and_outcomes: Days) -> None:
    """Walking the pages by next_offset yields every audit exactly once, in a stable order."""
    store.add(_events(days_and_outcomes))
    total = sum(len(o.audits) for _, o in days_and_outcomes)
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = store.audits(limit=7, offset=offset)
        assert page.total == total and len(page.items) <= 7
        seen.extend(a.event_id for a in page.items)
        offset = page.next_offset
    assert len(seen) == len(set(seen)) == total
    day, outcome = days_and_outcomes[1]
    trail = store.audits(AuditFilter(dispatch_id=day.dispatch_id), limit=500).items
    assert [a.sequence for a in trail] == list(range(len(outcome.audits)))


def test_a_pending_dispatch_and_the_replay_verdict(
    store: AuditStore, days_and_outcomes: Days
) -> None:
    """An input without outcome lists as pending; with everything stored, the store's record
    verifies exactly like the topics' (same `verify`)."""
    day, outcome = days_and_outcomes[0]
    store.add([(day, None)])
    pending = store.dispatches(DispatchFilter(status="pending"))
    assert [r.dispatch_id for r in pending.items] == [day.dispatch_id]
    assert pending.items[0].status is None
    store.add([(a, None) for a in outcome.audits] + [(outcome.optimized, None)])
    inputs, outcomes, audits = store.dispatch_events(day.dispatch_id)
    assert inputs == [day] and outcomes == [outcome.optimized] and audits == list(outcome.audits)
    verdict = verify(DispatchRecord(day.dispatch_id, inputs, outcomes, audits))
    assert verdict.ok, verdict.problems
    assert verdict.accepted == outcome.optimized.moves_accepted


def test_a_duplicate_inside_one_batch_is_one_row(
    store: AuditStore, days_and_outcomes: Days
) -> None:
    """A batch that carries the same events twice (redelivered within one fetch) stores them
    once and announces each new Optimized once."""
    events = _events(days_and_outcomes[:1])
    new = store.add(events + events)
    assert [o.event_id for o in new] == [days_and_outcomes[0][1].optimized.event_id]
    assert store.counts()["swap_audit"] == len(days_and_outcomes[0][1].audits)
    assert store.counts()["heuristic_done"] == 1


def test_payloads_as_read_are_stored_as_is(store: AuditStore, days_and_outcomes: Days) -> None:
    """Given the JSON each event was read as, the store keeps that text (not a re-encoding)
    and hands back the same events; many rows at once go in several statements."""
    day, outcome = days_and_outcomes[1]
    spaced = day.model_dump_json(indent=1)  # the upstream's own formatting
    events = [(day, None)] + [(a, None) for a in outcome.audits] + [(outcome.optimized, None)]
    payloads = [spaced] + [a.model_dump_json().encode() for a in outcome.audits] + [None]
    new = store.add(events, payloads)
    assert [o.event_id for o in new] == [outcome.optimized.event_id]
    with store.engine.connect() as conn:
        kept = conn.exec_driver_sql("SELECT payload FROM heuristic_done").scalar_one()
    assert kept == spaced
    inputs, outcomes, audits = store.dispatch_events(day.dispatch_id)
    assert inputs == [day] and outcomes == [outcome.optimized] and audits == list(outcome.audits)
    many = [
        (a.model_copy(update={"event_id": f"{a.event_id}-{i}"}), None)
        for i in range(300)
        for a in outcome.audits[:8]
    ]
    assert store.add(many) == []
    assert store.counts()["swap_audit"] == len(outcome.audits) + len(many)


def test_each_store_has_an_id_of_its_own_kept_across_restarts(tmp_path: Path) -> None:
    """The id that names the store consumer's default group: made once per database, the same
    after a restart, different for another database (another host's SQLite file)."""
    a, b = (f"sqlite:///{tmp_path / name}" for name in ("a.sqlite3", "b.sqlite3"))
    first = AuditStore.open(a)
    id_a = first.store_id()
    first.close()
    again, other = AuditStore.open(a), AuditStore.open(b)
    try:
        assert len(id_a) == 32 and again.store_id() == id_a
        assert other.store_id() != id_a
    finally:
        again.close()
        other.close()


def test_a_store_made_before_ids_gets_one_on_upgrade(tmp_path: Path) -> None:
    """A database left at revision 0001 (before store ids) is migrated at open and given one."""
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    old = AuditStore.open(url, migrate=False)
    with old.engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    assert current(old.engine) == "0001"
    old.close()
    store = AuditStore.open(url)
    try:
        assert current(store.engine) == "0002" and len(store.store_id()) == 32
    finally:
        store.close()


def test_the_store_consumer_group_is_one_per_store_unless_set(store: AuditStore) -> None:
    default = Settings()
    assert consumer_group(default, store) == f"dispatch-rl-store-{store.store_id()[:12]}"
    assert consumer_group(Settings(store_group="shared"), store) == "shared"
    # set to the default's own value, it is still used as given
    assert consumer_group(Settings(store_group="dispatch-rl-store"), store) == "dispatch-rl-store"
