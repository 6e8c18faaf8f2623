"""Bearer-token access to the API.

Every /api/* route depends on `require_token`: the request must carry the token, either as
`Authorization: Bearer <token>` (scripts, curl) or in the `dispatch_rl_token` cookie (the
dashboard's pages and EventSource, which cannot set headers; `GET /login?token=...` sets it).
Tokens are compared in constant time.

The token is `DISPATCH_RL_API_TOKEN`; when unset, `resolve_token` generates one once and keeps
it in `<state_dir>/api-token` (mode 0600), so a restart keeps the same token and whoever can
read the worker's state directory can use the API.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse

from streams.settings import Settings

if TYPE_CHECKING:
    from streams.web.context import WebContext

COOKIE = "dispatch_rl_token"
TOKEN_FILE = "api-token"


def token_path(settings: Settings) -> Path:
    return Path(settings.state_dir) / TOKEN_FILE


def resolve_token(settings: Settings) -> tuple[str, str]:
    """The API token and where it came from (`DISPATCH_RL_API_TOKEN` or the token file)."""
    if settings.api_token is not None and settings.api_token.get_secret_value():
        return settings.api_token.get_secret_value(), "DISPATCH_RL_API_TOKEN"
    path = token_path(settings)
    if path.is_file():
        token = path.read_text().strip()
        if token:
            return token, str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # O_EXCL: two workers starting together must not overwrite each other's token.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), str(path)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, str(path)


def context_of(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the API token."""
    expected = context_of(request).token.encode()
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    candidates = [given.strip()] if scheme.lower() == "bearer" else []
    if COOKIE in request.cookies:
        candidates.append(request.cookies[COOKIE])
    if not any(hmac.compare_digest(c.encode(), expected) for c in candidates if c):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong API token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


login_router = APIRouter()


@login_router.get("/login", include_in_schema=False)
def login(request: Request, token: str = Query(...), next: str = Query("/")) -> RedirectResponse:
    """Check `token`, store it in an HttpOnly cookie and go to `next` (a local path)."""
    if not hmac.compare_digest(token.encode(), context_of(request).token.encode()):
        raise HTTPException(status_code=401, detail="wrong API token")
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response
