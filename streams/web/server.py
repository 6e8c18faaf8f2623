"""`create_web_app(ctx)`: the worker's one web server (FastAPI), served by uvicorn in-process.

Routes: the audit API (`/api/...`, bearer token), `/login` (token -> cookie, for the
dashboard), `/dispatch/health/` (open: container health checks), FastAPI's `/openapi.json`
and `/docs` / `/redoc` (their scripts served by this app, no CDN). Other modules add their
routes through `EXTENSIONS`: each listed module that exists must define
`register(app: FastAPI, ctx: WebContext) -> None` (the dashboard, the SSE stream and
`/metrics` come in this way), so this file does not change when they do.
"""

from __future__ import annotations

import importlib
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from streams.web.api import router as api_router
from streams.web.auth import login_router
from streams.web.context import WebContext

log = structlog.get_logger("dispatch_rl.web")

EXTENSIONS = ("streams.web.dashboard", "streams.metrics")
"""Modules that register routes on the app when present (see the module docstring)."""

HEALTH_PATH = "/dispatch/health/"


def create_web_app(ctx: WebContext, *, extensions: tuple[str, ...] = EXTENSIONS) -> FastAPI:
    """The ASGI app of the worker (not started; `streams.web.runner` serves it)."""
    # FastAPI's own /docs page loads Swagger UI from a CDN, which a dispatch office's closed
    # network (and our tests) cannot reach; fastapi-offline serves the same files from the wheel.
    app = FastAPIOffline(
        title="dispatch-rl",
        summary="Audit query API of the dispatch fairness optimizer",
        description="Reads of /api/* need `Authorization: Bearer <token>` "
        "(DISPATCH_RL_API_TOKEN, or the generated token in <state_dir>/api-token).",
        version="1",
    )
    app.state.ctx = ctx
    app.include_router(api_router)
    app.include_router(login_router)

    @app.get(HEALTH_PATH, tags=["operations"])
    def health() -> dict[str, Any]:
        """Liveness and what this worker has done (open: container health checks read it)."""
        return ctx.health()

    for name in extensions:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not an absent optional module
                raise
            continue
        module.register(app, ctx)
        log.debug("web_extension_registered", module=name)
    return app
