"""The durable embedded default: what `make run`/`make demo` did survives the process.

Runs the real CLI as a user would, with no bootstrap configured, so the durable local broker
under `DISPATCH_RL_DATA_DIR` is started (and stopped on exit) by each command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from optimizer.seed import seed_day
from streams.local_kafka import status
from streams.local_kafka.process import free_ports

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]


def _env(data_dir: Path, port: int, controller_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_RL_")}
    env.update(
        DISPATCH_RL_DATA_DIR=str(data_dir),
        DISPATCH_RL_LOCAL_BROKER_PORT=str(port),
        DISPATCH_RL_LOCAL_CONTROLLER_PORT=str(controller_port),
        DISPATCH_RL_WEB_ENABLED="false",
        DISPATCH_RL_LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
    )
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_dispatch_can_be_audited_after_the_service_stopped(tmp_path: Path) -> None:
    """`demo` (local broker started and stopped), then `audit` of its seed day in a new
    process: the broker comes back on the same data and port, and the replay verifies; the
    audit store sits under the same data dir."""
    data_dir = tmp_path / "data"
    port, controller_port = free_ports(2)
    env = _env(data_dir, port, controller_port)

    demo = _cli(env, "demo", "--days", "1", "--timeout", "120")
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-4000:]
    assert not status(data_dir / "kafka").running, "demo stops the broker it started"
    assert (data_dir / "kafka" / "data" / "meta.properties").is_file()
    assert (data_dir / "dataset").is_dir(), "the dataset lives under the data dir by default"

    # --topics: read the broker's topics, not the audit store the demo also filled.
    audit = _cli(env, "audit", seed_day().dispatch_id, "--timeout", "60", "--topics")
    assert audit.returncode == 0, audit.stdout[-2000:] + audit.stderr[-4000:]
    assert "replay verified" in audit.stdout
    assert f"127.0.0.1:{port}" in audit.stderr, "the same stable port as the demo's broker"
    assert not status(data_dir / "kafka").running

    # The audit store lives beside the broker data; the default audit (store first, topics
    # when the store lacks the dispatch: `demo` may exit before the store caught up) verifies.
    assert (data_dir / "audit.sqlite3").is_file()
    stored = _cli(env, "audit", seed_day().dispatch_id, "--timeout", "60")
    assert stored.returncode == 0, stored.stdout[-2000:] + stored.stderr[-4000:]
    assert "replay verified" in stored.stdout
    assert not status(data_dir / "kafka").running

    # Days published while the service is down wait on the durable broker for the next run.
    publish = _cli(env, "publish", str(ROOT / "examples" / "seed-day.json"))
    assert publish.returncode == 0, publish.stderr[-4000:]
    assert f"at 127.0.0.1:{port}" in publish.stdout
    assert not status(data_dir / "kafka").running
