"""`WebContext`: what the web server's routes may use (built by the worker, read by routers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streams.settings import Settings
from streams.store.notify import OptimizedNotifier

if TYPE_CHECKING:
    from streams.store.store import AuditStore


def _no_health() -> dict[str, Any]:
    return {"status": "ok"}


@dataclass(frozen=True)
class WebContext:
    """The settings, the API token, the audit store (None: this process runs none), the
    notifier of stored `Optimized` events, and the health report of the worker."""

    settings: Settings
    token: str
    store: AuditStore | None = None
    notifier: OptimizedNotifier = field(default_factory=OptimizedNotifier)
    health: Callable[[], dict[str, Any]] = _no_health
