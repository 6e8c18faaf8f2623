"""The audit API in-process (httpx over ASGI, a real SQLite store): the token is required and
checked, every query key and page works, the verdict equals the CLI's, OpenAPI lists it all."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from optimizer.dispatch import Outcome, optimize_event
from optimizer.generate import generate_day
from optimizer.policy import GreedyPolicy
from schemas import HeuristicDone
from streams.audit import DispatchRecord, verify
from streams.settings import Settings
from streams.store import AuditStore
from streams.web import WebContext, create_web_app
from streams.web.auth import COOKIE, resolve_token, token_path

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def filled_store(
    tmp_path: Path, seed_day: HeuristicDone
) -> Iterator[tuple[AuditStore, list[Outcome]]]:
    """A SQLite store: the seed day and a generated day (with rejected moves), outcomes, audits."""
    store = AuditStore.open(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    outcomes = []
    for day in (seed_day, generate_day(20, 4, 12)):
        out = optimize_event(day, GreedyPolicy())
        store.add([(day, None), *((a, None) for a in out.audits), (out.optimized, None)])
        outcomes.append(out)
    yield store, outcomes
    store.close()


@pytest.fixture
async def client(
    tmp_path: Path, filled_store: tuple[AuditStore, list[Outcome]]
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app (ASGI transport), the store filled, no token sent."""
    settings = Settings(state_dir=tmp_path / "state", api_token=TOKEN)
    ctx = WebContext(settings, TOKEN, store=filled_store[0], health=lambda: {"status": "ok"})
    transport = httpx.ASGITransport(app=create_web_app(ctx, extensions=()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    "path",
    ["/api/dispatches", "/api/audits", "/api/dispatches/x", "/api/dispatches/x/verdict",
     "/api/bookings/b"],
)  # fmt: skip
async def test_reads_are_refused_without_or_with_a_wrong_token(
    client: httpx.AsyncClient, path: str
) -> None:
    """401 with a Bearer challenge when the token is missing, wrong, or in the wrong scheme."""
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        r = await client.get(path, headers=headers)
        assert r.status_code == 401, (path, headers)
        assert r.headers["www-authenticate"] == "Bearer"


async def test_login_sets_a_cookie_that_opens_the_api(client: httpx.AsyncClient) -> None:
    """/login?token= (right token) sets the HttpOnly cookie; the wrong token gets 401."""
    assert (await client.get("/login", params={"token": "wrong"})).status_code == 401
    r = await client.get("/login", params={"token": TOKEN, "next": "//evil.example"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie and "Path=/" in cookie
    client.cookies.set(COOKIE, TOKEN)
    assert (await client.get("/api/dispatches")).status_code == 200


async def test_health_is_open(client: httpx.AsyncClient) -> None:
    """The container health check needs no token."""
    r = await client.get("/dispatch/health/")
    assert r.status_code == 200 and r.json()["status"] == "ok"


async def test_dispatch_queries_and_pages(
    client: httpx.AsyncClient, filled_store: tuple[AuditStore, list[Outcome]]
) -> None:
    """List, filter by booking/driver/date/status/model, and page with next_offset."""
    _, outcomes = filled_store
    r = await client.get("/api/dispatches", headers=AUTH)
    body = r.json()
    assert r.status_code == 200 and body["total"] == 2 and body["next_offset"] is None
    seed = outcomes[0].optimized
    first = (await client.get("/api/dispatches", headers=AUTH, params={"limit": 1})).json()
    assert len(first["items"]) == 1 and first["next_offset"] == 1
    second = (
        await client.get("/api/dispatches", headers=AUTH, params={"limit": 1, "offset": 1})
    ).json()
    ids = {first["items"][0]["dispatch_id"], second["items"][0]["dispatch_id"]}
    assert ids == {o.optimized.dispatch_id for o in outcomes}
    booking = seed.assignments[0].booking_id
    found = await _items(client, "/api/dispatches", booking=booking)
    assert seed.dispatch_id in [d["dispatch_id"] for d in found]
    row = next(d for d in found if d["dispatch_id"] == seed.dispatch_id)
    assert row["gap_before"] == 3 and row["gap_after"] == 1 and row["status"] == "optimized"
    version = seed.model_version
    assert len(await _items(client, "/api/dispatches", model_version=version)) == 2
    assert await _items(client, "/api/dispatches", model_version="other") == []
    assert await _items(client, "/api/dispatches", status="pending") == []
    dated = await _items(client, "/api/dispatches", service_date=str(seed.service_date))
    assert all(d["service_date"] == str(seed.service_date) for d in dated)
    r = await client.get("/api/dispatches", headers=AUTH, params={"limit": 0})
    assert r.status_code == 422


async def test_audit_queries_by_decision_reason_driver(
    client: httpx.AsyncClient, filled_store: tuple[AuditStore, list[Outcome]]
) -> None:
    """Audits by dispatch (in sequence), decision + reason, driver; unknown reasons are 422."""
    _, outcomes = filled_store
    out = outcomes[1]
    trail = await _items(client, "/api/audits", dispatch_id=out.optimized.dispatch_id, limit=500)
    assert [a["sequence"] for a in trail] == list(range(len(out.audits)))
    audits = [a for o in outcomes for a in o.audits]
    rejected = next(a for a in audits if a.decision == "rejected")
    got = await _items(
        client, "/api/audits", decision="rejected", reason=rejected.reason, limit=500
    )
    assert len(got) == sum(a.decision == "rejected" and a.reason == rejected.reason for a in audits)
    assert all(a["decision"] == "rejected" and a["reason"] == rejected.reason for a in got)
    r = await client.get("/api/audits", headers=AUTH, params={"reason": "no-such-reason"})
    assert r.status_code == 422
    history = (
        await client.get(f"/api/bookings/{rejected.steps[0].booking_id}", headers=AUTH)
    ).json()
    assert rejected.event_id in [a["event_id"] for a in history["audits"]]


async def test_dispatch_detail_and_verdict_equal_the_cli(
    client: httpx.AsyncClient, filled_store: tuple[AuditStore, list[Outcome]]
) -> None:
    """The verdict endpoint answers what `verify` (the CLI's check) says; unknown ids are 404."""
    store, outcomes = filled_store
    seed = outcomes[0].optimized
    detail = (await client.get(f"/api/dispatches/{seed.dispatch_id}", headers=AUTH)).json()
    assert detail["outcome"]["event_id"] == seed.event_id
    assert len(detail["audits"]) == seed.moves_proposed and len(detail["inputs"]) == 1
    r = await client.get(f"/api/dispatches/{seed.dispatch_id}/verdict", headers=AUTH)
    inputs, outs, audits = store.dispatch_events(seed.dispatch_id)
    expected = verify(DispatchRecord(seed.dispatch_id, inputs, outs, audits))
    assert r.json() == {
        "dispatch_id": seed.dispatch_id,
        "ok": expected.ok,
        "problems": list(expected.problems),
        "proposed": expected.proposed,
        "accepted": expected.accepted,
    }
    assert r.json()["ok"] is True
    assert (await client.get("/api/dispatches/nope/verdict", headers=AUTH)).status_code == 404
    assert (await client.get("/api/dispatches/nope", headers=AUTH)).status_code == 404


async def test_openapi_lists_the_routes_and_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    """FastAPI's /openapi.json documents every API route and its query keys."""
    doc: dict[str, Any] = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    for p in (
        "/api/dispatches",
        "/api/dispatches/{dispatch_id}",
        "/api/dispatches/{dispatch_id}/verdict",
        "/api/audits",
        "/api/bookings/{booking_id}",
        "/dispatch/health/",
    ):
        assert p in paths, p
    params = {q["name"] for q in paths["/api/audits"]["get"]["parameters"]}
    assert {"dispatch_id", "booking", "driver", "service_date", "decision", "reason"} <= params
    assert {"model_version", "limit", "offset"} <= params


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_docs_pages_need_no_outside_network(client: httpx.AsyncClient, path: str) -> None:
    """/docs and /redoc load every script, style and icon from this app (no CDN)."""
    page = await client.get(path)
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]|url: ['"]([^'"]+)['"]""", page.text)
    assets = [a or b for a, b in urls]
    assert any(a.endswith(".js") for a in assets), assets
    for url in assets:
        assert url.startswith("/"), f"{url} is not served by the app"
        assert (await client.get(url)).status_code == 200, url


def test_generated_token_is_kept_private_and_stable(tmp_path: Path) -> None:
    """Without DISPATCH_RL_API_TOKEN a token is generated once into a 0600 file and reused."""
    settings = Settings(state_dir=tmp_path / "s")
    token, where = resolve_token(settings)
    assert where == str(token_path(settings)) and len(token) >= 32
    assert token_path(settings).stat().st_mode & 0o777 == 0o600
    assert resolve_token(settings) == (token, where)
    assert resolve_token(Settings(state_dir=tmp_path / "s", api_token="x")) == (
        "x",
        "DISPATCH_RL_API_TOKEN",
    )


async def _items(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    r = await client.get(path, headers=AUTH, params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items
