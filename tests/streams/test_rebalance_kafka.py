"""A worker joining a busy one: the rebalance does not wait for the busy worker's queued backlog
(it is forgotten and redelivered from the committed offsets), and nothing is lost."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from optimizer.generate import generate_days
from streams.topics import ensure_topics
from streams.worker import keyed
from tests.faults.harness import (
    WorkerProcess,
    check_optimized,
    distinct,
    produce,
    read_all,
    worker_env,
)
from tests.streams.conftest import unique_settings

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]


async def test_a_joining_worker_gets_partitions_without_waiting_for_the_backlog(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A holds hundreds of queued 60x8 days (tens of seconds of passes) when B joins: A drops
    its queued messages at the revocation, B answers days within seconds, and every day is
    answered, repeats carrying the first answer's event id and plan."""
    settings = unique_settings(kafka_bootstrap, tmp_path, model_dir=tmp_path / "models")
    await ensure_topics(settings)
    # Small batches: what is already being prepared when B joins (and still finishes) stays
    # small next to the queued backlog, whatever the machine's load.
    env = worker_env(settings, DISPATCH_RL_PIPELINE_BATCH_MAX="8")
    days = [
        d.model_copy(update={"event_id": f"evt-rb-{i}", "dispatch_id": f"rb-{i}"})
        for i, d in enumerate(generate_days(400, [(60, 8)], seed=11))
    ]
    a = WorkerProcess(env, tmp_path / "a.log", "run", "--optimizer-only").start()
    b = WorkerProcess(env, tmp_path / "b.log", "run", "--optimizer-only")
    try:
        await a.wait_for("worker_running")
        await produce(settings, keyed(days))
        await a.wait_for("dispatch_published", timeout=120)
        started = time.monotonic()
        b.start()
        dropped = await a.wait_for("queued_dropped_on_rebalance", timeout=120)
        await b.wait_for("worker_running", timeout=120)
        running_s = time.monotonic() - started
        await b.wait_for("dispatch_published", timeout=120)
        joined_s = time.monotonic() - started
        records = await read_all(
            settings,
            settings.topic_optimized,
            until=distinct("dispatch_id", len(days)),
            timeout=400,
        )
    finally:
        for w in (a, b):
            with contextlib.suppress(Exception):  # stop both even if one stop fails
                w.stop()  # SIGTERM, then SIGKILL of its session after 60 s
    out = check_optimized(records, [d.dispatch_id for d in days])
    print(
        f"\n[rebalance] A dropped {dropped['messages']} queued; B running after {running_s:.1f} s, "
        f"answering after {joined_s:.1f} s; duplicates {out.duplicates}"
    )
    assert dropped["messages"] > 0
    assert out.lost == [] and out.inconsistent == []
    # Without dropping, B waits until A has optimized its whole backlog (tens of seconds).
    assert joined_s < 60
