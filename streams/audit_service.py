"""The worker's audit side: the audit store consumer and the web server, started and stopped
together by `streams.worker.running_worker`.

`start_store(settings, stop, notifier)` opens (and migrates) the store in a thread, then starts
the consumer task and waits until it has joined its group's consumer. A database server that
does not answer yet is waited for (one warning per try, backoff up to 30 s) while the
optimizer, already started, goes on: the store catches up from Kafka once it opens.
`start_web(...)` resolves the API token (logging where it is kept), builds the app and serves
it on `settings.web_host:settings.web_port`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from streams.ports import listen_socket
from streams.settings import Settings
from streams.store import (
    AuditStore,
    OptimizedNotifier,
    StoreCounters,
    run_store_consumer,
    store_url,
)
from streams.web import RunningWeb, WebContext, create_web_app
from streams.web import start_web as serve
from streams.web.auth import resolve_token

log = structlog.get_logger("dispatch_rl.worker")


@dataclass
class RunningStore:
    """The store and its consumer task."""

    store: AuditStore
    task: asyncio.Task[StoreCounters]
    counters: StoreCounters

    async def stop(self) -> None:
        """Wait for the consumer (its stop event must be set) and close the database."""
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        finally:
            self.store.close()


async def start_store(
    settings: Settings, stop: asyncio.Event, notifier: OptimizedNotifier
) -> RunningStore:
    """Open the store (migrations included) and start its consumer; raise if either fails,
    except a database server that cannot be reached yet (waited for, see the module doc)."""
    store = await _open_when_reachable(store_url(settings))
    counters = StoreCounters()
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_store_consumer(
            settings, store, stop, notifier=notifier, ready=ready, counters=counters
        ),
        name="audit-store",
    )
    ready_wait = asyncio.ensure_future(ready.wait())
    await asyncio.wait([ready_wait, task], return_when=asyncio.FIRST_COMPLETED)
    ready_wait.cancel()
    if task.done():
        store.close()
        task.result()  # the consumer could not start: raise why
    return RunningStore(store, task, counters)


STORE_RETRY_MAX_S = 30.0


class StoreConfigError(RuntimeError):
    """The audit store's URL cannot work (bad URL, unsupported database, unopenable file)."""


async def _open_when_reachable(url: str) -> AuditStore:
    """`AuditStore.open(url)`, tried again while a database server does not answer. A SQLite
    file that cannot be opened is a configuration error: raised at once."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise StoreConfigError(f"DISPATCH_RL_STORE_URL: {exc}") from exc
    if backend not in ("sqlite", "postgresql"):
        raise StoreConfigError(
            f"DISPATCH_RL_STORE_URL: {backend} is not supported "
            "(sqlite:///PATH or postgresql+psycopg://USER@HOST/DB)"
        )
    delay = 1.0
    while True:
        try:
            return await asyncio.to_thread(AuditStore.open, url)
        except (ArgumentError, ImportError, ValueError) as exc:
            raise StoreConfigError(f"DISPATCH_RL_STORE_URL: {exc}") from exc
        except (OSError, OperationalError) as exc:
            if isinstance(exc, OSError) or url.startswith("sqlite"):
                where = make_url(url).render_as_string(hide_password=True)
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                raise StoreConfigError(f"cannot open {where}: {reason}") from exc
            reason = str(exc.orig or exc).strip().splitlines()[0][:300]
            log.warning(
                "store_unreachable_retrying",
                error=reason,
                retry_in_s=delay,
                message="the optimizer keeps running; the audit store and the web server "
                "start once the database answers (the store then catches up from Kafka)",
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, STORE_RETRY_MAX_S)


async def start_web(
    settings: Settings,
    store: AuditStore | None,
    notifier: OptimizedNotifier,
    health: Callable[[], dict[str, Any]],
) -> RunningWeb:
    """Serve the API (and whatever registers on it) on the configured host and port."""
    token, where = resolve_token(settings)
    ctx = WebContext(settings, token, store=store, notifier=notifier, health=health)
    # A port taken by another worker on this host is not fatal: a free one is bound instead,
    # and the log line and `RunningWeb.port` say which.
    bound = listen_socket(settings.web_host, settings.web_port)
    bound.sock.setblocking(False)
    running = await serve(create_web_app(ctx), settings.web_host, bound.port, sock=bound.sock)
    running.token = token
    log.info(
        "api_token",
        source=where,
        hint="send `Authorization: Bearer <token>`; the browser: open /login?token=<token>",
    )
    return running


async def store_caught_up(settings: Settings, group: str, timeout: float) -> bool:
    """Wait (at most `timeout` s) until the store's consumer group (`store.consumer_group`) has
    committed the end of every partition of its topics: the store holds all published so far."""
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.reader import TopicReader, topic_kinds
    from streams.topics import client_options

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        async with TopicReader(settings, *topic_kinds(settings)) as reader:
            while True:
                ends = await reader.end_offsets()
                done = await admin.list_consumer_group_offsets(group)
                if all(end <= (done[tp].offset if tp in done else 0) for tp, end in ends.items()):
                    return True
                if loop.time() > deadline:
                    return False
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
