"""The health view's content: what a worker serves and has done, with nothing host-specific.

`health_payload(app)` is what `GET /dispatch/health/` returns. Health endpoints are read by
load balancers, container runtimes and whoever can reach the port, so the payload never
carries an absolute path or the host's name: `scrub` rewrites every string in it (a model
load error typically quotes the file it could not read) to keep only the last path component
and to replace the hostname with `<host>`.
"""

from __future__ import annotations

import re
import socket
from functools import cache
from typing import Any

# An absolute POSIX path (or file URL), or a home-relative one: everything up to the last "/".
_PATH = re.compile(r"(?:file://)?(?<![\w.~-])(?:~/|/)(?:[^\s/'\"(),:;]+/)*(?=[^\s/'\"(),:;])")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\s\\'\"]+\\)+")


@cache
def _host_names() -> tuple[str, ...]:
    names = {socket.gethostname(), socket.getfqdn()}
    return tuple(sorted((n for n in names if n and n not in {"localhost"}), key=len, reverse=True))


def scrub(value: Any) -> Any:
    """`value` with absolute paths cut to their last component and host names hidden.

    Dicts, lists and tuples are walked; other non-string values come back unchanged.
    """
    if isinstance(value, str):
        text = _WINDOWS_PATH.sub("…\\\\", _PATH.sub("…/", value))
        for name in _host_names():
            text = text.replace(name, "<host>")
        return text
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def health_payload(app: Any) -> dict[str, Any]:
    """Liveness and what this worker has done (an app made by `streams.app.create_app`)."""
    provider = app.dispatch_provider
    handler = app.dispatch_handler
    try:
        version = provider.policy().version
    except Exception as exc:
        version = f"unavailable: {type(exc).__name__}"
    # Where the served policy came from (champion, shipped default, or greedy because no
    # model loads) and the last load error, when the provider can tell.
    status = getattr(provider, "status", None)
    try:
        model = status() if callable(status) else None
    except Exception as exc:
        model = {"error": f"{type(exc).__name__}: {exc}"}
    pipeline = getattr(app, "dispatch_pipeline", None)
    payload: dict[str, Any] = scrub(
        {
            "status": "ok" if pipeline is None or pipeline.failure is None else "failing",
            "app_id": app.conf.id,
            "model_version": version,
            "model": model,
            "handled": dict(handler.counts),
            "send_retries": dict(handler.retries),
            "in_flight": pipeline.pending() if pipeline is not None else None,
            # Threads preparing now, and started since launch (>1: a slow message needed one).
            "prepare_threads": None
            if pipeline is None
            else {"running": pipeline.threads.threads, "started": pipeline.threads.started},
            # Child processes running the pass (None: it runs in a thread): the pool's least and
            # most, how many serve now, started and stopped with the load, restarts after one
            # died, messages published without a pass because one died on them, extra children
            # for held ones, children started for one large input alone.
            "prepare_processes": None
            if pipeline is None or pipeline.processes is None
            else {
                "processes": pipeline.processes.processes,
                "max": pipeline.processes.max_processes,
                "running": pipeline.processes.running,
                "scaled_up": pipeline.processes.scaled_up,
                "scaled_down": pipeline.processes.scaled_down,
                "restarts": pipeline.processes.restarts,
                "set_aside": pipeline.processes.set_aside,
                "grown": pipeline.processes.grown,
                "own": pipeline.processes.own_started,
                "failed": pipeline.processes.failed,
            },
            # Lane batches over calls to prepare processes / over send rounds: how much the
            # partitions' work is done together (streams.batching).
            "batching": None if pipeline is None else pipeline.batching(),
        }
    )
    return payload
