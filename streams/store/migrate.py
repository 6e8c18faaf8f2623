"""Apply the audit store's Alembic migrations (`upgrade(engine)`; the worker runs it at start)."""

from __future__ import annotations

import logging
from pathlib import Path

# Alembic announces every plugin (at import) and step at INFO; `audit_store_migrated` says
# what matters. Set before alembic is imported.
logging.getLogger("alembic").setLevel(logging.WARNING)

import structlog  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402

log = structlog.get_logger("dispatch_rl.store")

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK = 0x64697370  # advisory lock key: one migrator at a time on a shared PostgreSQL


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str | None:
    """The newest migration's revision id."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema; a no-op when it is there already.

    Two workers starting together may race on a SQLite file: the loser's DDL fails because the
    winner's tables exist, so it tries once more, and then finds the database at head.
    """
    target = head()
    for attempt in (1, 2):
        if current(engine) == target:
            return
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            log.info("audit_store_migrated", revision=target)
            return
        except DBAPIError:
            if attempt == 2:
                raise
            log.warning("audit_store_migration_retry")
