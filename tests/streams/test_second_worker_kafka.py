"""Two real worker processes on one host and one real broker: the second joins the consumer
group as an optimizer-only member instead of dying on the dataset directory's lock, and takes
the dataset writer over when the first stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from optimizer.generate import generate_days
from streams.dataset import dataset_stats
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
    """Worker B on A's dataset directory: one `dataset_writer_elsewhere` line naming A's pid,
    both optimize (each holds partitions), every dispatch recorded once; after A stops, B
    takes the dataset writer over and records the next days."""
    settings = unique_settings(kafka_bootstrap, tmp_path, model_dir=tmp_path / "models")
    await ensure_topics(settings)
    env = worker_env(settings)
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
