"""`AuditStore`: the audit store's database — open (and migrate), add events, query them.

SQLite (embedded, one file; the default) or PostgreSQL (by URL), through SQLAlchemy 2 Core.
Writes are idempotent by event id (`INSERT ... ON CONFLICT DO NOTHING`): the same event added
twice, by a redelivery or a restart, is one row. `add` returns the `Optimized` events that were
new, so the caller can announce them after the transaction committed.

Every method is synchronous and thread-safe (one engine, a connection per call): the consumer
calls `add` from a worker thread, the web API reads from its thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, Table, create_engine, event, func, select
from sqlalchemy.engine import make_url

from optimizer.adapter import event_keys
from schemas import HeuristicDone, Optimized, SwapAudit
from streams.settings import Settings
from streams.store import queries
from streams.store.migrate import upgrade
from streams.store.queries import AuditFilter, DispatchFilter, DispatchRow, Page
from streams.store.tables import audits, inputs, outcomes, refs, store_meta

log = structlog.get_logger("dispatch_rl.store")

DispatchEvent = HeuristicDone | Optimized | SwapAudit
SQLITE_FILE = "audit.sqlite3"
_MAX_PARAMS = 30_000  # per statement: SQLite allows 32,766 (3.32+), PostgreSQL 65,535


@dataclass(frozen=True, slots=True)
class Source:
    """Where an event was read (kept with its row)."""

    topic: str
    partition: int
    offset: int


def store_url(settings: Settings) -> str:
    """`settings.store_url`, else the SQLite file `<data_dir>/audit.sqlite3` (beside the
    local broker's `kafka/` and the dataset)."""
    if settings.store_url:
        return settings.store_url
    return f"sqlite:///{sqlite_path(settings)}"


def sqlite_path(settings: Settings) -> Path:
    """Where the default embedded store lives."""
    return Path(settings.data_dir).expanduser().absolute() / SQLITE_FILE


def consumer_group(settings: Settings, store: AuditStore) -> str:
    """The store consumer's group: `DISPATCH_RL_STORE_GROUP` as given when set, else
    `dispatch-rl-store-<store id>` (`Settings.sink_group`): workers sharing one database share
    one group, two hosts' own SQLite files each get every event."""
    return settings.sink_group("store_group", store.store_id)


def default_store_exists(settings: Settings) -> bool:
    """True when a store is configured by URL or the default SQLite file exists."""
    return bool(settings.store_url) or sqlite_path(settings).is_file()


class AuditStore:
    """The audit store on one database (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"audit store: {engine.dialect.name} is not supported")
        self.engine = engine
        self._bind_cache: dict[str, tuple[list[str], list[Callable[[Any], Any] | None]]] = {}

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> AuditStore:
        """Connect to `url` (creating a SQLite file's directory) and apply the migrations."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
        store = cls(engine)
        if migrate:
            upgrade(engine)
        log.info("audit_store_opened", url=store.url, dialect=engine.dialect.name)
        return store

    def store_id(self) -> str:
        """This database's random id (made once by migration 0002)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(store_meta.c.value).where(store_meta.c.key == "store_id")
            ).scalar_one()
        return str(value)

    @property
    def url(self) -> str:
        """The database URL with any password hidden (for logs and health)."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ writing

    def add(
        self,
        items: Iterable[tuple[DispatchEvent, Source | None]],
        payloads: Sequence[str | bytes | None] | None = None,
    ) -> list[Optimized]:
        """Store events not stored yet, in one transaction; the new `Optimized` ones.

        `payloads[i]`, when given and not None, is item i's JSON as it was read (the consumer
        has it: stored as is instead of serializing the event again).

        Multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING event_id` statements per table:
        the returned ids are the rows that were new (a redelivered event returns nothing).
        They go to the driver as plain SQL with positional parameters, each value through its
        column type's bind processor: SQLAlchemy's own executemany spends more CPU per row
        than the database does (measured: the largest cost of the store consumer).
        """
        now = datetime.now(UTC)
        rows: dict[Any, list[dict[str, Any]]] = {}
        events: dict[str, DispatchEvent] = {}
        for i, (ev, source) in enumerate(items):
            if ev.event_id in events:  # the same event twice in one batch is one row
                continue
            payload = None if payloads is None else payloads[i]
            table, row = _row(ev, source, now, payload)
            rows.setdefault(table, []).append(row)
            events[ev.event_id] = ev
        if not events:
            return []
        new: set[str] = set()
        with self.engine.begin() as conn:
            for table, batch in rows.items():
                new.update(self._insert_ignore(conn, table, batch, returning=True))
            ref_rows = [r for event_id in sorted(new) for r in _ref_rows(events[event_id])]
            if ref_rows:
                self._insert_ignore(conn, refs, ref_rows, returning=False)
        return [e for i, e in events.items() if i in new and isinstance(e, Optimized)]

    def _insert_ignore(
        self, conn: Connection, table: Table, rows: list[dict[str, Any]], *, returning: bool
    ) -> list[str]:
        """Insert `rows` (dicts by column name) unless their primary key exists; with
        `returning`, the event ids inserted."""
        columns, processors = self._binds(table)
        mark = "?" if self.engine.dialect.name == "sqlite" else "%s"
        one = "(" + ", ".join([mark] * len(columns)) + ")"
        head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
        tail = " ON CONFLICT DO NOTHING" + (" RETURNING event_id" if returning else "")
        per = max(1, _MAX_PARAMS // len(columns))
        out: list[str] = []
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            params: list[Any] = []
            for row in chunk:
                params.extend(
                    row[c] if f is None else f(row[c])
                    for c, f in zip(columns, processors, strict=True)
                )
            result = conn.exec_driver_sql(
                head + ", ".join([one] * len(chunk)) + tail, tuple(params)
            )
            if returning:
                out.extend(r[0] for r in result)
        return out

    def _binds(self, table: Table) -> tuple[list[str], list[Callable[[Any], Any] | None]]:
        """Column names of `table` and each column type's bind processor (None: as is)."""
        found = self._bind_cache.get(table.name)
        if found is None:
            dialect = self.engine.dialect
            columns = [c.name for c in table.columns]
            processors: list[Callable[[Any], Any] | None] = [
                c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.columns
            ]
            found = self._bind_cache[table.name] = (columns, processors)
        return found

    # ------------------------------------------------------------------ reading

    def dispatches(
        self, where: DispatchFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> Page[DispatchRow]:
        """Stored inputs with their outcome (if any), newest first, filtered and paged."""
        with self.engine.connect() as conn:
            return queries.list_dispatches(conn, where or DispatchFilter(), limit, offset)

    def audits(
        self, where: AuditFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> Page[SwapAudit]:
        """Stored swap audits, filtered and paged (a dispatch's in sequence order)."""
        with self.engine.connect() as conn:
            return queries.list_audits(conn, where or AuditFilter(), limit, offset)

    def dispatch_events(
        self, dispatch_id: str
    ) -> tuple[list[HeuristicDone], list[Optimized], list[SwapAudit]]:
        """Every stored input, outcome (oldest first) and audit of one dispatch."""
        with self.engine.connect() as conn:
            return queries.dispatch_events(conn, dispatch_id)

    def counts(self) -> dict[str, int]:
        """Rows per event table."""
        with self.engine.connect() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for name, t in (
                    ("heuristic_done", inputs),
                    ("optimized", outcomes),
                    ("swap_audit", audits),
                )
            }


def _ref_rows(ev: DispatchEvent) -> list[dict[str, Any]]:
    """The event's bookings and drivers (none for an outcome: they are its input's)."""
    keys = event_keys(ev)
    if keys.kind == "optimized":
        return []
    return [
        {"ref": ref, "ref_id": i, "event_id": keys.event_id, "kind": keys.kind}
        | {"dispatch_id": keys.dispatch_id}
        for ref, ids in (("booking", keys.bookings), ("driver", keys.drivers))
        for i in ids
    ]


def _row(
    ev: DispatchEvent, source: Source | None, now: datetime, payload: str | bytes | None = None
) -> tuple[Any, dict[str, Any]]:
    if isinstance(payload, bytes):
        payload = payload.decode()
    common: dict[str, Any] = {
        "event_id": ev.event_id,
        "dispatch_id": ev.dispatch_id,
        "payload": ev.model_dump_json() if payload is None else payload,
        "source_topic": source.topic if source else None,
        "source_partition": source.partition if source else None,
        "source_offset": source.offset if source else None,
        "stored_at": now,
    }
    if isinstance(ev, HeuristicDone):
        return inputs, common | {
            "company_id": ev.company_id,
            "service_date": ev.service_date,
            "mode": ev.mode,
            "produced_at": ev.produced_at,
            "n_bookings": len(ev.bookings),
            "n_drivers": len(ev.drivers),
        }
    if isinstance(ev, Optimized):
        before, after = ev.metrics.before, ev.metrics.after
        return outcomes, common | {
            "source_event_id": ev.source_event_id,
            "company_id": ev.company_id,
            "service_date": ev.service_date,
            "status": ev.status,
            "reason": ev.reason,
            "model_version": ev.model_version,
            "gap_before": before.gap,
            "gap_after": after.gap,
            "deadhead_km_before": before.deadhead_km,
            "deadhead_km_after": after.deadhead_km,
            "lateness_minutes_before": before.lateness_minutes,
            "lateness_minutes_after": after.lateness_minutes,
            "moves_proposed": ev.moves_proposed,
            "moves_accepted": ev.moves_accepted,
            "latency_ms": ev.latency_ms,
            "produced_at": ev.produced_at,
        }
    return audits, common | {
        "source_event_id": ev.source_event_id,
        "sequence": ev.sequence,
        "kind": ev.kind,
        "decision": ev.decision,
        "reason": ev.reason,
        "model_version": ev.model_version,
        "gap_before": ev.gap_before,
        "gap_after": ev.gap_after,
        "delta": ev.delta,
        "score": ev.score,
        "at": ev.at,
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the API read while the consumer writes; FULL sync makes a commit durable
    before the consumer commits its Kafka offsets; the busy timeout lets two workers on one
    host share the file."""
    cur = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()
