"""Two real worker processes on one host and one real broker: the second joins the consumer
group as an optimizer-only member instead of dying on the dataset directory's lock or on the
busy web port, and takes the dataset writer over when the first stops. Both run the audit
store consumer on the same database (it is idempotent by event id)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from optimizer.generate import generate_days
from streams.dataset import dataset_stats
from streams.ports import listen_socket
from streams.topics import ensure_topics
from streams.worker import keyed
from tests.faults.harness import (
    WorkerProcess,
    check_optimized,
    dataset_counts,
    distinct,
    produce,
    read_all,
    worker_env,
)
from tests.streams.conftest import dataset_caught_up, unique_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(420)]


async def test_second_worker_runs_optimizer_only_then_takes_the_dataset_over(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Worker B on A's dataset directory and web port: one `dataset_writer_elsewhere` line
    naming A's pid, one `web_port_busy` line naming the free port B serves on (and both
    answer health there), both optimize (each holds partitions), every dispatch recorded once
    in the dataset and in the shared audit store; after A stops, B takes the dataset writer
    over and records the next days."""
    settings = unique_settings(kafka_bootstrap, tmp_path, model_dir=tmp_path / "models")
    await ensure_topics(settings)
    probe = listen_socket("127.0.0.1", 0)
    port = probe.port
    probe.sock.close()
    env = worker_env(
        settings,
        DISPATCH_RL_WEB_ENABLED="true",
        DISPATCH_RL_WEB_PORT=str(port),
        DISPATCH_RL_STORE_ENABLED="true",
        DISPATCH_RL_STORE_GROUP=settings.store_group,
        DISPATCH_RL_API_TOKEN="second-worker-test",
    )
    a = WorkerProcess(env, tmp_path / "a.log").start()
    b = WorkerProcess(env, tmp_path / "b.log")
    try:
        await a.wait_for("worker_running")
        b.start()
        line = await b.wait_for("dataset_writer_elsewhere")
        await b.wait_for("worker_running")
        assert line["holder_pid"] == a.pid
        assert f"dataset writer already running in pid {a.pid}" in line["message"]
        assert "optimizer-only" in line["message"]
        assert b.count("dataset_writer_elsewhere") == 1
        busy = await b.wait_for("web_port_busy")
        assert busy["requested"] == port and busy["port"] != port
        assert b.count("web_port_busy") == 1 and a.count("web_port_busy") == 0
        assert _health(port)["status"] == "ok" and _health(busy["port"])["status"] == "ok"

        # Publish in rounds until both members have handled input (the group rebalanced).
        sent: list[str] = []
        for rnd in range(12):
            days = generate_days(15, [(10, 3)], seed=1000 + rnd)
            await produce(settings, keyed(days))
            sent += [d.dispatch_id for d in days]
            if a.count("dispatch_published") and b.count("dispatch_published"):
                break
            await asyncio.sleep(2.0)
        assert a.count("dispatch_published") > 0 and b.count("dispatch_published") > 0
        out = await read_all(
            settings, settings.topic_optimized, until=distinct("dispatch_id", len(sent))
        )
        check = check_optimized(out, sent)
        assert check.lost == [] and check.inconsistent == []
        await dataset_caught_up(settings, timeout=90)

        assert a.stop() == 0  # A held the dataset directory
        await b.wait_for("dataset_writer_taking_over", timeout=30)
        later = generate_days(20, [(10, 3)], seed=77)
        await produce(settings, keyed(later))
        sent += [d.dispatch_id for d in later]
        out = await read_all(
            settings, settings.topic_optimized, until=distinct("dispatch_id", len(sent))
        )
        assert check_optimized(out, sent).lost == []
        await dataset_caught_up(settings, timeout=90)
        stored = await _stored_dispatches(busy["port"], len(sent), timeout=90)
    finally:
        a.stop()
        code_b = b.stop()
    assert code_b == 0, b.text()[-3000:]
    assert a.tracebacks() == b.tracebacks() == 0
    counts = dataset_counts(settings.dataset_dir)
    assert {d for (kind, d) in counts if kind == "heuristic_done"} == set(sent)
    assert set(counts.values()) == {1}
    stats = dataset_stats(settings.dataset_dir)
    assert stats.dispatches == stats.outcomes == stats.matched == len(sent)
    assert stored == len(sent)  # two store consumers, one row per dispatch


def _get(port: int, path: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        headers={"Authorization": "Bearer second-worker-test"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


def _health(port: int) -> dict[str, Any]:
    return _get(port, "/dispatch/health/")


async def _stored_dispatches(port: int, expected: int, timeout: float) -> int:
    """How many dispatches the audit store lists (through B's API), once it holds `expected`
    or `timeout` passes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        total = int(_get(port, "/api/dispatches?limit=1")["total"])
        if total >= expected or asyncio.get_running_loop().time() > deadline:
            return total
        await asyncio.sleep(1.0)
