"""The live dashboard: server-rendered pages, one small script, server-sent events.

Routes (registered on the one web app by `register`):

* `GET /`: recent dispatches (status, model, gap and deadhead before/after, latency);
* `GET /dispatches/{dispatch_id}`: one dispatch (rides per driver before/after as bars, the
  swap trail with decisions and reasons, the replay verdict of `streams.audit.verify`);
* `GET /api/stream`: `text/event-stream`; one `optimized` event per dispatch the audit store
  materializes (`ctx.notifier`), carrying the dispatch id, its status and its rendered row;
* `GET /static/dashboard.js|.css`; `GET /asyncapi.json`, the event contract (open).

The pages show audit data, so they need the API token like `/api/*` does: a browser gets the
`dispatch_rl_token` cookie once from `/login?token=...` (the link `make demo` prints). The
script is same-origin and sends the cookie with its `EventSource` and `fetch` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import structlog
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse

from schemas import HeuristicDone, Optimized, SwapAudit
from schemas.asyncapi import ASYNCAPI_PATH
from streams.audit import DispatchRecord, verify
from streams.web import pages
from streams.web.auth import require_token

log = structlog.get_logger("dispatch_rl.web")

STATIC_DIR = Path(__file__).parent / "static"
RECENT_LIMIT = 100
KEEPALIVE_S = 15.0
"""An SSE comment this often keeps proxies and the browser from closing an idle stream."""
SECURITY_HEADERS = {
    # Everything the pages load is ours; the bars' widths are inline style attributes.
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class DashboardStore(Protocol):
    """What the pages read of the audit store (`streams.store.AuditStore`)."""

    def dispatches(self, where: Any = None, *, limit: int = 50, offset: int = 0) -> Any:
        """A page (`.items`) of summary rows, newest first."""
        ...

    def dispatch_events(
        self, dispatch_id: str
    ) -> tuple[list[HeuristicDone], list[Optimized], list[SwapAudit]]: ...


def signed_in(request: Request) -> bool:
    """True when the request carries the API token (bearer header or the login cookie)."""
    try:
        require_token(request)
    except HTTPException:
        return False
    return True


def _latest(
    inputs: list[HeuristicDone], outcomes: list[Optimized], audits: list[SwapAudit]
) -> tuple[HeuristicDone | None, Optimized | None, list[SwapAudit]]:
    """The newest outcome, the input it answers, and its swap log once (redeliveries)."""
    if not outcomes:
        return (inputs[-1] if inputs else None), None, []
    opt = outcomes[-1]
    event = next((e for e in reversed(inputs) if e.event_id == opt.source_event_id), None)
    trail = {a.event_id: a for a in audits if a.source_event_id == opt.source_event_id}
    return event, opt, sorted(trail.values(), key=lambda a: a.sequence)


def _html(text: str, status: int = 200) -> Response:
    return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)


def _sign_in_page() -> Response:
    return _html(
        pages.message_page(
            "Sign in",
            "This page shows audit data: open the link the worker printed at start "
            "(<code>/login?token=...</code>; the token is <code>DISPATCH_RL_API_TOKEN</code> "
            "or the file named in the worker's log).",
        ),
        401,
    )


def _summary_json(opt: Optimized) -> str:
    return json.dumps(
        {
            "dispatch_id": opt.dispatch_id,
            "event_id": opt.event_id,
            "status": opt.status,
            "row_html": pages.dispatch_row(pages.Row.of(opt)),
        },
        separators=(",", ":"),
    )


async def optimized_events(
    subscribe: Callable[[], contextlib.AbstractAsyncContextManager[AsyncIterator[Optimized]]],
    *,
    keepalive: float = KEEPALIVE_S,
) -> AsyncIterator[str]:
    """The SSE stream: subscribe first, then say hello, then one event per `Optimized`."""
    async with subscribe() as incoming:
        # The first bytes make the browser fire `open`; by then the subscription exists, so
        # a dispatch published after `open` is never missed.
        yield "retry: 2000\n: subscribed\n\n"
        iterator = aiter(incoming)
        pending: asyncio.Future[Optimized] | None = None
        try:
            while True:
                pending = pending or asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait({pending}, timeout=keepalive)
                if not done:
                    yield ": keepalive\n\n"
                    continue
                opt, pending = pending.result(), None
                yield f"event: optimized\nid: {opt.event_id}\ndata: {_summary_json(opt)}\n\n"
        except StopAsyncIteration:
            return
        finally:
            if pending is not None:
                pending.cancel()


def register(app: FastAPI, ctx: Any) -> None:
    """Add the dashboard's routes to the web app (`ctx`: the `streams.web` context)."""
    store: DashboardStore | None = ctx.store
    config = ctx.settings.dispatch_config()

    @app.get("/", include_in_schema=False)
    def dashboard(request: Request) -> Response:
        if not signed_in(request):
            return _sign_in_page()
        if store is None:
            return _html(pages.dashboard_page([], "The audit store is off in this worker."))
        rows = store.dispatches(limit=RECENT_LIMIT).items
        return _html(pages.dashboard_page([_row(r) for r in rows]))

    @app.get("/dispatches/{dispatch_id}", include_in_schema=False)
    def dispatch(dispatch_id: str, request: Request) -> Response:
        if not signed_in(request):
            return _sign_in_page()
        inputs, outcomes, audits = store.dispatch_events(dispatch_id) if store else ([], [], [])
        event, opt, trail = _latest(inputs, outcomes, audits)
        if opt is None:  # not here yet: the page waits for it
            return _html(pages.dispatch_page(dispatch_id, event, None, (), None), 404)
        # The same replay as `dispatch-rl audit` and the API's verdict, on the same events.
        verdict = verify(DispatchRecord(dispatch_id, inputs, outcomes, audits), config)
        return _html(pages.dispatch_page(dispatch_id, event, opt, trail, verdict))

    @app.get(
        "/api/stream",
        tags=["dashboard"],
        summary="Server-sent events: each dispatch.optimized the audit store stores",
        dependencies=[Depends(require_token)],
    )
    async def stream() -> Response:
        """`text/event-stream`; one `optimized` event per stored outcome, data JSON with
        `dispatch_id`, `event_id`, `status` and `row_html` (the dashboard's table row)."""
        return StreamingResponse(
            optimized_events(ctx.notifier.subscribe),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/asyncapi.json", tags=["contract"], summary="The AsyncAPI 3 event contract")
    def asyncapi() -> Response:
        """The four topics and their message schemas (schemas/asyncapi.json); open."""
        return FileResponse(ASYNCAPI_PATH, media_type="application/json")

    for name, media in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        path = STATIC_DIR / name

        def static(path: Path = path, media: str = media) -> FileResponse:
            return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})

        app.add_api_route(f"/static/{name}", static, methods=["GET"], include_in_schema=False)


def _row(r: Any) -> pages.Row:
    """A dashboard row from the store's summary row (`streams.store.DispatchRow`)."""
    return pages.Row(
        dispatch_id=r.dispatch_id,
        service_date=r.service_date,
        status=r.status,
        model_version=r.model_version,
        gap_before=r.gap_before,
        gap_after=r.gap_after,
        deadhead_km_before=r.deadhead_km_before,
        deadhead_km_after=r.deadhead_km_after,
        moves_accepted=r.moves_accepted,
        moves_proposed=r.moves_proposed,
        latency_ms=r.latency_ms,
        at=r.optimized_at or r.produced_at,
    )
