"""The audit store: the dispatch topics materialized into a database (SQLite or PostgreSQL).

`AuditStore.open(store_url(settings))` connects and migrates; `run_store_consumer` fills it
from the topics; `OptimizedNotifier` announces each newly stored `Optimized` in-process.

Names are imported lazily (PEP 562): the worker needs the notifier at import, and SQLAlchemy
and Alembic load only when a store is opened.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.store.consumer import StoreCounters, run_store_consumer
    from streams.store.notify import OptimizedNotifier
    from streams.store.queries import AuditFilter, DispatchFilter, DispatchRow, Page
    from streams.store.store import (
        AuditStore,
        Source,
        default_store_exists,
        sqlite_path,
        store_url,
    )

_WHERE = {
    "AuditFilter": "streams.store.queries",
    "AuditStore": "streams.store.store",
    "DispatchFilter": "streams.store.queries",
    "DispatchRow": "streams.store.queries",
    "OptimizedNotifier": "streams.store.notify",
    "Page": "streams.store.queries",
    "Source": "streams.store.store",
    "StoreCounters": "streams.store.consumer",
    "default_store_exists": "streams.store.store",
    "run_store_consumer": "streams.store.consumer",
    "sqlite_path": "streams.store.store",
    "store_url": "streams.store.store",
}

__all__ = [
    "AuditFilter",
    "AuditStore",
    "DispatchFilter",
    "DispatchRow",
    "OptimizedNotifier",
    "Page",
    "Source",
    "StoreCounters",
    "default_store_exists",
    "run_store_consumer",
    "sqlite_path",
    "store_url",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'streams.store' has no attribute {name!r}")
