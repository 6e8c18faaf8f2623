"""The audit store's tables (SQLAlchemy Core), one row per event id.

Three event tables mirror the three topics; `event_ref` files every input and every audit under
the bookings and drivers it concerns (a day's bookings and drivers; a move's bookings and its
from/to drivers), so "what happened to booking B" and "which moves touched driver D" are index
lookups. Each row keeps the validated event as JSON (`payload`), so the store can hand back the
exact event the topic carried; the other columns are what queries filter and sort on.

The schema is created and changed only by the Alembic migrations in `migrations/versions`
(a test checks they produce exactly these tables).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

ID = 128


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as naive UTC (SQLite has no time zones), read back as UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _source() -> list[Column[Any]]:
    """Where the event was read: topic, partition, offset (None when added directly)."""
    return [
        Column("source_topic", String(249)),
        Column("source_partition", Integer),
        Column("source_offset", BigInteger),
        Column("stored_at", UTCDateTime(), nullable=False),
    ]


inputs = Table(
    "heuristic_done",
    metadata,
    Column("event_id", String(ID), primary_key=True),
    Column("dispatch_id", String(ID), nullable=False),
    Column("company_id", String(ID), nullable=False),
    Column("service_date", Date, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("produced_at", UTCDateTime(), nullable=False),
    Column("n_bookings", Integer, nullable=False),
    Column("n_drivers", Integer, nullable=False),
    Column("payload", Text, nullable=False),
    *_source(),
    Index(None, "dispatch_id"),
    Index(None, "service_date", "produced_at"),
    Index(None, "produced_at"),
)

outcomes = Table(
    "optimized",
    metadata,
    Column("event_id", String(ID), primary_key=True),
    Column("dispatch_id", String(ID), nullable=False),
    Column("source_event_id", String(ID), nullable=False),
    Column("company_id", String(ID), nullable=False),
    Column("service_date", Date, nullable=False),
    Column("status", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("model_version", String(256), nullable=False),
    Column("gap_before", Integer, nullable=False),
    Column("gap_after", Integer, nullable=False),
    Column("deadhead_km_before", Float, nullable=False),
    Column("deadhead_km_after", Float, nullable=False),
    Column("lateness_minutes_before", Float, nullable=False),
    Column("lateness_minutes_after", Float, nullable=False),
    Column("moves_proposed", Integer, nullable=False),
    Column("moves_accepted", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("produced_at", UTCDateTime(), nullable=False),
    Column("payload", Text, nullable=False),
    *_source(),
    Index(None, "dispatch_id"),
    Index(None, "source_event_id"),
    Index(None, "service_date"),
    Index(None, "status"),
    Index(None, "model_version"),
    Index(None, "produced_at"),
)

audits = Table(
    "swap_audit",
    metadata,
    Column("event_id", String(ID), primary_key=True),
    Column("dispatch_id", String(ID), nullable=False),
    Column("source_event_id", String(ID), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("model_version", String(256), nullable=False),
    Column("gap_before", Integer, nullable=False),
    Column("gap_after", Integer),
    Column("delta", Float),
    Column("score", Float),
    Column("at", UTCDateTime(), nullable=False),
    Column("payload", Text, nullable=False),
    *_source(),
    Index(None, "dispatch_id", "sequence"),
    Index(None, "source_event_id", "sequence"),
    Index(None, "decision", "reason"),
    Index(None, "reason"),
    Index(None, "model_version"),
    Index(None, "at"),
)

refs = Table(
    "event_ref",
    metadata,
    Column("ref", String(8), primary_key=True),  # "booking" | "driver"
    Column("ref_id", String(ID), primary_key=True),
    Column("event_id", String(ID), primary_key=True),
    Column("kind", String(16), nullable=False),  # "heuristic_done" | "swap_audit"
    Column("dispatch_id", String(ID), nullable=False),
    Index(None, "event_id"),
)
"""(ref, ref_id) leads the primary key: a lookup by booking or driver is a range scan."""

store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)
"""The store's own facts: `store_id`, a random id made once per database (migration 0002), which
names the store consumer's default consumer group."""
