"""The dashboard's pages, stream and /metrics route on a web app, with an in-memory store.

The real-broker, real-browser test is tests/streams/test_dashboard_browser.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from optimizer.dispatch import Outcome, optimize_event
from optimizer.generate import generate_day
from optimizer.policy import GreedyPolicy
from schemas import HeuristicDone, Optimized, SwapAudit
from streams import metrics as metrics_module
from streams.settings import Settings
from streams.web import dashboard

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class _Store:
    """The reads of `streams.store.AuditStore` the dashboard uses, over a dict."""

    def __init__(self, days: dict[str, tuple[HeuristicDone, Outcome]]) -> None:
        self.days = days

    def dispatches(self, where: Any = None, *, limit: int = 50, offset: int = 0) -> Any:
        rows = []
        for day, outcome in reversed(self.days.values()):
            opt = outcome.optimized
            b, a = opt.metrics.before, opt.metrics.after
            rows.append(
                SimpleNamespace(
                    dispatch_id=day.dispatch_id,
                    service_date=day.service_date,
                    produced_at=day.produced_at,
                    status=opt.status,
                    model_version=opt.model_version,
                    gap_before=b.gap,
                    gap_after=a.gap,
                    deadhead_km_before=b.deadhead_km,
                    deadhead_km_after=a.deadhead_km,
                    moves_proposed=opt.moves_proposed,
                    moves_accepted=opt.moves_accepted,
                    latency_ms=opt.latency_ms,
                    optimized_at=opt.produced_at,
                )
            )
        return SimpleNamespace(items=rows[offset : offset + limit])

    def dispatch_events(
        self, dispatch_id: str
    ) -> tuple[list[HeuristicDone], list[Optimized], list[SwapAudit]]:
        if dispatch_id not in self.days:
            return [], [], []
        day, outcome = self.days[dispatch_id]
        return [day], [outcome.optimized], list(outcome.audits)


class _Notifier:
    def __init__(self, items: list[Optimized]) -> None:
        self.items = items

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Optimized]]:
        async def events() -> AsyncIterator[Optimized]:
            for item in self.items:
                yield item
            await asyncio.sleep(3600)
            yield self.items[0]

        yield events()


@pytest.fixture(scope="module")
def days() -> dict[str, tuple[HeuristicDone, Outcome]]:
    """Two generated days and what the greedy pass made of them."""
    out = {}
    for seed in (3, 4):
        day = generate_day(14, 3, seed=seed)
        out[day.dispatch_id] = (day, optimize_event(day, GreedyPolicy()))
    return out


def _client(store: Any, notifier: Any = None) -> httpx.AsyncClient:
    app = FastAPI()
    ctx = SimpleNamespace(
        settings=Settings(), store=store, notifier=notifier or _Notifier([]), token=TOKEN
    )
    app.state.ctx = ctx  # where streams.web.auth looks for the token
    dashboard.register(app, ctx)
    metrics_module.register(app, ctx)
    # httpx straight on the ASGI app: starlette's TestClient wants another HTTP package.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_pages_need_the_token(days: dict[str, tuple[HeuristicDone, Outcome]]) -> None:
    """Without the bearer token or the login cookie the pages and the stream answer 401."""
    client = _client(_Store(days))
    some_id = next(iter(days))
    assert (await client.get("/")).status_code == 401
    assert (await client.get(f"/dispatches/{some_id}")).status_code == 401
    assert (await client.get("/api/stream")).status_code == 401
    assert (await client.get("/", headers={"Authorization": "Bearer wrong"})).status_code == 401
    client.cookies.set("dispatch_rl_token", TOKEN)
    assert (await client.get("/")).status_code == 200


async def test_list_shows_each_dispatch(days: dict[str, tuple[HeuristicDone, Outcome]]) -> None:
    """The list has one row per stored dispatch with its status, model and gap change."""
    page = await _client(_Store(days)).get("/", headers=AUTH)
    assert (
        page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    )
    for day, outcome in days.values():
        opt = outcome.optimized
        row = re.search(
            rf'<tr class="dispatch" data-dispatch-id="{day.dispatch_id}">.*?</tr>', page.text
        )
        assert row, day.dispatch_id
        assert opt.status in row.group(0) and opt.model_version in row.group(0)
        assert f"{opt.metrics.before.gap} → {opt.metrics.after.gap}" in row.group(0)


async def test_dispatch_page_has_bars_trail_and_verdict(
    days: dict[str, tuple[HeuristicDone, Outcome]],
) -> None:
    """One dispatch: two bars per driver with its ride counts, one trail row per audit, OK."""
    day, outcome = next(iter(days.values()))
    opt = outcome.optimized
    page = (await _client(_Store(days)).get(f"/dispatches/{day.dispatch_id}", headers=AUTH)).text
    for d in day.drivers:
        block = re.search(rf'data-driver="{d.driver_id}">(.*?)</div></div></div>', page)
        assert block, d.driver_id
        rides = re.findall(r'class="bar (before|after)" data-rides="(\d+)"', block.group(1))
        assert rides == [
            ("before", str(opt.metrics.before.rides_per_driver[d.driver_id])),
            ("after", str(opt.metrics.after.rides_per_driver[d.driver_id])),
        ]
    assert page.count('<tr class="move ') == len(outcome.audits) > 0
    assert page.count('<tr class="move accepted"') == opt.moves_accepted
    assert 'class="verdict ok"' in page


async def test_dispatch_page_shows_a_failed_replay(
    days: dict[str, tuple[HeuristicDone, Outcome]],
) -> None:
    """A swap log missing its accepted moves fails the replay, and the page says why."""
    dispatch_id, (day, outcome) = next(iter(days.items()))
    rejected = tuple(a for a in outcome.audits if a.decision == "rejected")
    broken = {dispatch_id: (day, Outcome(outcome.optimized, rejected))}
    page = (await _client(_Store(broken)).get(f"/dispatches/{dispatch_id}", headers=AUTH)).text
    assert 'class="verdict failed"' in page and "accepted audits but the outcome says" in page


async def test_unknown_dispatch_waits_and_text_is_escaped(
    days: dict[str, tuple[HeuristicDone, Outcome]],
) -> None:
    """An unknown id gives a 404 page that waits for it; event text is never raw HTML."""
    client = _client(_Store(days))
    waiting = await client.get("/dispatches/not-yet", headers=AUTH)
    assert waiting.status_code == 404 and 'id="waiting"' in waiting.text
    dispatch_id, (day, outcome) = next(iter(days.items()))
    hostile = outcome.optimized.model_copy(update={"reason": "<script>alert(1)</script>"})
    store = _Store({dispatch_id: (day, Outcome(hostile, outcome.audits))})
    page = (await _client(store).get(f"/dispatches/{dispatch_id}", headers=AUTH)).text
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page


async def test_static_files_and_metrics_are_served(
    days: dict[str, tuple[HeuristicDone, Outcome]],
) -> None:
    """The script, style and event contract load; /metrics answers in the Prometheus format."""
    client = _client(_Store(days))
    js = await client.get("/static/dashboard.js")
    assert js.status_code == 200 and "EventSource" in js.text
    assert js.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/static/dashboard.css")).status_code == 200
    contract = await client.get("/asyncapi.json")
    assert contract.status_code == 200 and contract.json()["asyncapi"] == "3.0.0"
    scrape = await client.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    assert "# TYPE dispatch_rl_dispatches_total counter" in scrape.text


async def test_stream_says_hello_then_one_event_per_dispatch(
    days: dict[str, tuple[HeuristicDone, Outcome]],
) -> None:
    """SSE: a first chunk once subscribed, then `optimized` events with the row, keepalives."""
    items = [o.optimized for _, o in days.values()]
    stream = dashboard.optimized_events(_Notifier(items).subscribe, keepalive=0.05)
    hello = await anext(stream)
    assert hello.startswith("retry: ")
    for opt in items:
        chunk = await anext(stream)
        lines = dict(line.split(": ", 1) for line in chunk.strip().splitlines())
        assert lines["event"] == "optimized" and lines["id"] == opt.event_id
        data = json.loads(lines["data"])
        assert data["dispatch_id"] == opt.dispatch_id and data["status"] == opt.status
        assert f'data-dispatch-id="{opt.dispatch_id}"' in data["row_html"]
    assert await anext(stream) == ": keepalive\n\n"
    await stream.aclose()
