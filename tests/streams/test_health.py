"""The health view's content reveals no absolute path and no host name (`streams.health`)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

from optimizer.policy import GreedyPolicy
from streams.app import create_app
from streams.health import health_payload, scrub
from streams.settings import Settings


class LeakyProvider:
    """A provider whose status quotes paths and the host, as a model load error does."""

    def policy(self) -> Any:
        return GreedyPolicy()

    def refresh(self) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        host = socket.gethostname()
        return {
            "source": "greedy",
            "last_error": "cannot load /root/.cache/dispatch-rl/models/v3/model.pt: bad zip "
            f"(on {host}; see ~/var/models/champion.json, file:///srv/m/x.pt)",
            "model_dir": "/work/var/models",
            "paths": ["/etc/passwd", "relative/kept.txt"],
            "note": "ratio 3/5 and km/h are not paths",
        }


def test_scrub_keeps_file_names_and_drops_directories_and_host() -> None:
    """Absolute and home paths keep only their last part; the host becomes <host>."""
    host = socket.gethostname()
    out = scrub({"e": f"open /a/b/c.pt failed on {host}", "n": [1, "~/x/y.json"], "k": None})
    assert out == {"e": "open …/c.pt failed on <host>", "n": [1, "…/y.json"], "k": None}


def test_health_payload_has_no_absolute_path_nor_hostname(
    make_settings: Callable[..., Settings],
) -> None:
    """The whole health document: no '/dir/' prefix, no host name, the useful parts kept."""
    settings = make_settings()
    app = create_app(settings, LeakyProvider())  # type: ignore[arg-type]
    payload = health_payload(app)
    text = json.dumps(payload)
    for leak in ("/root/", "/work/", "/etc/", "/srv/", "~/", socket.gethostname()):
        assert leak not in text, leak
    assert payload["model"]["last_error"].startswith("cannot load …/model.pt: bad zip")
    assert payload["model"]["paths"] == ["…/passwd", "relative/kept.txt"]
    assert payload["model"]["note"] == "ratio 3/5 and km/h are not paths"
    assert payload["model_version"] == "greedy-v2" and payload["status"] == "ok"


def test_the_worker_health_route_payload_is_scrubbed_too(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    """What the web server's /dispatch/health/ returns (RunningWorker.health) leaks nothing."""
    from streams.worker import RunningWorker

    settings = make_settings(app_id=f"app-on-{socket.gethostname()}")
    app = create_app(settings, LeakyProvider())  # type: ignore[arg-type]
    payload = RunningWorker(settings, app, None).health()
    text = json.dumps(payload)
    for leak in ("/root/", "/work/", "/etc/", socket.gethostname()):
        assert leak not in text, leak
    assert payload["status"] == "ok" and payload["app_id"] == "app-on-<host>"
    assert payload["handled"] == {} and payload["model_version"] == "greedy-v2"
