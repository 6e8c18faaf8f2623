"""Serve the web app with uvicorn inside the worker's asyncio loop.

`start_web(app, host, port)` binds first (so the caller learns the real port at once, and a
bad address fails at start, not later in a background task), then serves in a task. uvicorn's
own signal handling is off: the worker owns SIGINT/SIGTERM and stops the server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import structlog
import uvicorn
from fastapi import FastAPI

log = structlog.get_logger("dispatch_rl.web")


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningWeb:
    """A web server started by `start_web`."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int
    token: str | None = None
    """The API token (set by the worker), for `login_url`."""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def login_url(self) -> str:
        """Opens the dashboard signed in: `/login?token=...` sets the token cookie."""
        from urllib.parse import quote

        return f"{self.url}/login?token={quote(self.token or '')}"

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def start_web(
    app: FastAPI, host: str, port: int, *, sock: socket.socket | None = None
) -> RunningWeb:
    """Bind `host:port` (or use the bound `sock`) and serve `app` until `RunningWeb.stop()`."""
    sock = sock if sock is not None else bind(host, port)
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        log_config=None,  # structlog owns logging; uvicorn's access lines stay off
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="web-server")
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
            raise RuntimeError("web server stopped before it started")
        await asyncio.sleep(0.02)
    running = RunningWeb(server, task, host, bound_port)
    log.info("web_server_started", url=running.url)
    return running
