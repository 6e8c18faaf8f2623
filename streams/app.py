"""`create_app(settings)`: the Faust app of the optimizer worker.

One agent, `optimize`, reads the input topic with concurrency 1 (faust-streaming #606 can commit
past an in-flight message with more) and hands each message to `DispatchHandler`. A timer asks
the policy provider to look for a newly promoted model every `model_poll_seconds` (hot reload).

Faust knows nothing of pydantic: every topic carries raw bytes and `streams.codec` does the rest.
The table web views are off (`web_tables_enabled=False`); tables, if ever added, live in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust
import structlog

from optimizer.serving import PolicyProvider, default_provider
from streams.agents import DispatchHandler, Handled, Source
from streams.settings import Settings
from streams.topics import MAX_MESSAGE_BYTES, declare_topics, faust_broker_options

log = structlog.get_logger("dispatch_rl.streams")

AGENT_NAME = "optimize"


def create_app(settings: Settings, provider: PolicyProvider | None = None) -> faust.App:
    """The optimizer worker's Faust app (not started).

    `provider` serves the move policy (default: `default_provider(settings.model_dir)`); tests
    inject one whose policy raises to force the fallback path. The app id (`settings.app_id`) is
    the consumer group of the agent: give each independent deployment or test its own.
    """
    provider = provider if provider is not None else default_provider(settings.model_dir)
    datadir = settings.state_dir / "faust" / settings.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        settings.app_id,
        **faust_broker_options(settings),
        autodiscover=False,
        store="memory://",
        datadir=str(datadir),
        key_serializer="raw",
        value_serializer="raw",
        topic_allow_declare=True,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replicas,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        producer_max_request_size=MAX_MESSAGE_BYTES,
        broker_commit_interval=1.0,
        # Faust's own aiohttp server stays off: the worker's one web server (FastAPI, in
        # streams.web, started by running_worker) serves health, the API and the dashboard.
        web_enabled=False,
        web_tables_enabled=False,
    )
    topics = declare_topics(app, settings)
    handler = DispatchHandler(topics, provider, settings.dispatch_config(), settings.limits())
    app.dispatch_handler = handler  # type: ignore[attr-defined]  # for tests and operators

    @app.agent(topics.input, name=AGENT_NAME, concurrency=1)
    async def optimize(stream: faust.StreamT[bytes]) -> AsyncIterator[Handled]:
        async for event in stream.events():
            msg = event.message
            yield await handler.handle(
                event.value, msg.key, Source(msg.topic, msg.partition, msg.offset)
            )

    @app.timer(interval=settings.model_poll_seconds, name="refresh_policy")  # type: ignore[untyped-decorator]
    async def refresh_policy() -> None:
        loop = asyncio.get_running_loop()
        try:
            changed = await loop.run_in_executor(None, provider.refresh)
        except Exception:  # a broken registry must not stop the worker; the old policy serves
            log.exception("policy_refresh_failed")
            return
        if changed:
            log.info("policy_reloaded", model_version=provider.policy().version)

    @app.page("/dispatch/health/")
    async def health(web: Any, request: Any) -> Any:
        """Liveness and what this worker has done: container health checks read it."""
        try:
            version = provider.policy().version
        except Exception as exc:
            version = f"unavailable: {type(exc).__name__}"
        # Where the served policy came from (champion, shipped default, or greedy because
        # no model loads) and the last load error, when the provider can tell.
        status = getattr(provider, "status", None)
        return web.json(
            {
                "status": "ok",
                "app_id": settings.app_id,
                "model_version": version,
                "model": status() if callable(status) else None,
                "handled": dict(handler.counts),
            }
        )

    return app


def agent_of(app: faust.App) -> Any:
    """The optimizer agent of an app made by `create_app` (for `test_context()`)."""
    return app.agents[AGENT_NAME]
