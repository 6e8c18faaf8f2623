"""The worker's web server: the audit API, health, and the routes other modules register.

`create_web_app(ctx)` builds the FastAPI app; `start_web(app, host, port)` serves it with
uvicorn in the running asyncio loop.
"""

from streams.web.context import WebContext
from streams.web.runner import RunningWeb, start_web
from streams.web.server import create_web_app

__all__ = ["RunningWeb", "WebContext", "create_web_app", "start_web"]
