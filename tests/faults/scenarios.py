"""The fault scenarios, each run against real worker subprocesses and a real broker, each
returning its measured figures. The tests in this folder assert on them; `bench/faults.py`
prints them in one table.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimizer.generate import generate_days
from schemas import HeuristicDone, Optimized, SwapAudit
from streams.audit import DispatchRecord, verify
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.worker import keyed
from tests.faults.harness import (
    OutputCheck,
    Produced,
    TopicLog,
    WorkerProcess,
    check_optimized,
    dataset_counts,
    has_distinct,
    produce,
    worker_env,
)
from tests.streams.conftest import dataset_caught_up, unique_settings

SMALL = [(10, 3)]


@functools.cache
def small_days(count: int, seed: int = 20261126) -> tuple[HeuristicDone, ...]:
    """`count` generated 10x3 days (cached: generating 2,000 takes seconds)."""
    return tuple(generate_days(count, SMALL, seed=seed))


def fault_settings(bootstrap: str, base: Path, **overrides: Any) -> Settings:
    """Unique topics, groups and directories under `base`; an empty model registry (the
    shipped model serves)."""
    return unique_settings(bootstrap, base, model_dir=base / "models", **overrides)


def replay_sample(
    settings: Settings,
    days: list[HeuristicDone],
    optimized: list[Any],
    audits: list[Any],
    sample: int,
    seed: int = 1,
) -> tuple[int, int, list[str]]:
    """The auditor's replay (`streams.audit.verify`) on `sample` dispatches that had moves:
    (checked, ok, problems)."""
    outs: dict[str, list[Optimized]] = defaultdict(list)
    for r in optimized:
        o = Optimized.model_validate_json(r.value)
        outs[o.dispatch_id].append(o)
    logs: dict[str, list[SwapAudit]] = defaultdict(list)
    for r in audits:
        a = SwapAudit.model_validate_json(r.value)
        logs[a.dispatch_id].append(a)
    with_moves = sorted(d for d, os_ in outs.items() if os_[0].moves_proposed > 0)
    chosen = random.Random(seed).sample(with_moves, min(sample, len(with_moves)))
    by_id = {d.dispatch_id: d for d in days}
    problems: list[str] = []
    ok = 0
    for d in chosen:
        verdict = verify(
            DispatchRecord(d, [by_id[d]], outs[d], logs[d]), settings.dispatch_config()
        )
        ok += verdict.ok
        problems += [f"{d}: {p}" for p in verdict.problems]
    return len(chosen), ok, problems


# ------------------------------------------------------------------ kill -9 mid-stream


@dataclass
class Kill9Figures:
    days: int
    handled_at_kill: int
    output: OutputCheck
    dataset_missing: int
    dataset_repeated: int
    replay_checked: int
    replay_ok: int
    replay_problems: list[str]
    recovery_s: float
    """From the restart to the last dispatch's Optimized visible."""
    tracebacks: int
    restarted_exit: int


async def kill9_scenario(
    bootstrap: str, base: Path, *, days: int = 2000, kill_after: int = 600, sample: int = 20
) -> Kill9Figures:
    """A worker (optimizer + dataset writer) gets `days` days; after `kill_after` Optimized it
    is killed with SIGKILL; a new worker finishes. Nothing may be lost; repeats must equal the
    first; the dataset holds each dispatch once; a sample replays."""
    settings = fault_settings(bootstrap, base)
    await ensure_topics(settings)
    env = worker_env(settings)
    batch = list(small_days(days))
    first = WorkerProcess(env, base / "worker-1.log").start()
    second = WorkerProcess(env, base / "worker-2.log")
    ids = [d.dispatch_id for d in batch]
    try:
        await first.wait_for("worker_running")
        async with TopicLog(settings, settings.topic_optimized) as out:
            await produce(settings, keyed(batch))
            if not await out.until(has_distinct(kill_after), timeout=300):
                raise AssertionError(f"only {len(out.distinct())} Optimized before the kill")
            first.kill9()
            await out.poll()
            handled = len(out.distinct())
            restarted = time.monotonic()
            second.start()
            if not await out.until(has_distinct(days), timeout=600):
                raise AssertionError(f"{len(out.distinct())} of {days} Optimized after restart")
            recovery = time.monotonic() - restarted
            await asyncio.sleep(3)  # late duplicates, if any, still count
            await out.catch_up()
            optimized = out.records
        output = check_optimized(optimized, ids)
        await dataset_caught_up(settings, timeout=120)
        async with TopicLog(settings, settings.topic_audit) as log:
            await log.catch_up()
            audits = log.records
    finally:
        first.stop()
        code = second.stop()
    counts = dataset_counts(settings.dataset_dir)
    missing = sum(counts[(kind, d)] == 0 for d in ids for kind in ("heuristic_done", "optimized"))
    repeated = sum(c - 1 for c in counts.values() if c > 1)
    checked, ok, problems = replay_sample(settings, batch, optimized, audits, sample)
    return Kill9Figures(
        days=days,
        handled_at_kill=handled,
        output=output,
        dataset_missing=missing,
        dataset_repeated=repeated,
        replay_checked=checked,
        replay_ok=ok,
        replay_problems=problems,
        recovery_s=recovery,
        tracebacks=second.tracebacks(),
        restarted_exit=code,
    )


# ------------------------------------------------------------------ two workers, one killed


@dataclass
class FailoverFigures:
    days: int
    output: OutputCheck
    takeover_s: float
    """From the kill to the first Optimized of a partition the killed worker held (its
    partitions are handed over together, at the rebalance)."""
    all_served_s: float
    """From the kill until every input partition has an Optimized again (includes working
    through the backlog that piled up on the orphaned partitions meanwhile)."""
    orphaned: list[int]
    """Partitions with no Optimized for more than `ORPHAN_GAP_S` after the kill."""
    per_partition_s: dict[int, float]
    session_timeout_s: float
    survivor_alive: bool
    survivor_tracebacks: int
    dataset_taken_over: bool


async def failover_scenario(
    bootstrap: str,
    base: Path,
    *,
    rate: float = 30.0,
    before_s: float = 8.0,
    after_s: float = 30.0,
) -> FailoverFigures:
    """Two workers share the group; days arrive steadily at `rate`/s; once both are serving,
    the dataset-holding one is killed with SIGKILL. The takeover time is measured per input
    partition from the output topic's record timestamps."""
    settings = fault_settings(bootstrap, base)
    await ensure_topics(settings)
    env = worker_env(settings)
    a = WorkerProcess(env, base / "a.log").start()
    b = WorkerProcess(env, base / "b.log")
    total = int(rate * (before_s + after_s)) + int(rate * 20)
    batch = list(small_days(max(total, 1), seed=4242))
    produced: list[Produced | BaseException] = []
    ids = [d.dispatch_id for d in batch]
    try:
        await a.wait_for("worker_running")
        b.start()
        await b.wait_for("worker_running")
        sender = asyncio.ensure_future(produce(settings, keyed(batch), rate=rate))
        # Both members must be serving before the kill (the group has rebalanced).
        deadline = time.monotonic() + 90
        while not (a.count("dispatch_published") and b.count("dispatch_published")):
            if time.monotonic() > deadline:
                raise AssertionError("the two workers never both served")
            await asyncio.sleep(0.5)
        await asyncio.sleep(before_s)
        killed_at = a.kill9()
        produced = await sender
        async with TopicLog(settings, settings.topic_optimized) as out:
            if not await out.until(has_distinct(len(ids)), timeout=240):
                raise AssertionError(f"{len(out.distinct())} of {len(ids)} Optimized")
            await asyncio.sleep(2)
            await out.catch_up()
            optimized = out.records
        taken = await _dataset_taken_over(b, timeout=30)
    finally:
        a.stop()
        alive = b.alive()
        b.stop()
    landed = {p.key: p for p in produced if isinstance(p, Produced)}
    assert len(landed) == len(batch), "some inputs were refused by the broker"
    first_after: dict[int, float] = {}
    for r in optimized:
        at = r.timestamp / 1000.0
        if at < killed_at:
            continue
        p = landed[r.key].partition
        first_after[p] = min(first_after.get(p, at), at)
    per_partition = {p: t - killed_at for p, t in sorted(first_after.items())}
    orphaned = [p for p, t in per_partition.items() if t > ORPHAN_GAP_S]
    return FailoverFigures(
        days=len(batch),
        output=check_optimized(optimized, ids),
        takeover_s=min((per_partition[p] for p in orphaned), default=0.0),
        all_served_s=max(per_partition.values(), default=float("inf")),
        orphaned=orphaned,
        per_partition_s=per_partition,
        session_timeout_s=settings.session_timeout_seconds,
        survivor_alive=alive,
        survivor_tracebacks=b.tracebacks(),
        dataset_taken_over=taken,
    )


ORPHAN_GAP_S = 2.0
"""A partition the survivor was serving answers within tens of ms at 10 days/s; one that
waits longer than this after the kill was the killed worker's (or revoked in the rebalance)."""


async def _dataset_taken_over(worker: WorkerProcess, timeout: float) -> bool:
    with contextlib.suppress(AssertionError):
        await worker.wait_for("dataset_writer_taking_over", timeout=timeout)
        return True
    return False


@dataclass
class Table:
    """Rows of (scenario, figure, value, requirement, ok) for the bench's one table."""

    rows: list[tuple[str, str, str, str, bool | None]] = field(default_factory=list)

    def add(
        self, scenario: str, figure: str, value: Any, need: str = "", ok: bool | None = None
    ) -> None:
        self.rows.append((scenario, figure, str(value), need, ok))
