"""Prepare processes: the records in-worker preparing gives, and a dying child loses nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from optimizer.generate import generate_day
from optimizer.serving import StaticPolicyProvider
from streams import codec
from streams.agents import DispatchHandler, Prepared, Source, TopicNames
from streams.cpu_quota import usable_cpus
from streams.prepare_processes import PrepareProcesses, settings_handler
from streams.settings import Settings

TOPICS = TopicNames(optimized="out", audit="audit", dead_letter="dlq")
DIE = b'{"die": true}'


class _DyingHandler(DispatchHandler):
    """Kills its process on the input `DIE` (as an out-of-memory kill would)."""

    def prepare(self, raw: bytes | None, key: bytes | None, source: Source) -> Prepared:
        if raw == DIE:
            os._exit(9)
        return super().prepare(raw, key, source)


def dying_handler() -> DispatchHandler:  # module level: the child imports it by name
    s = Settings()
    return _DyingHandler(
        TOPICS, StaticPolicyProvider(), s.dispatch_config(), s.limits(), _never_sends
    )


async def _never_sends(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
    raise AssertionError("a prepare process does not publish")


def flagged_handler(flag: str) -> DispatchHandler:
    """`dying_handler()`, unless the file `flag` exists: then it cannot start."""
    if Path(flag).exists():
        raise RuntimeError("cannot start (flag file)")
    return dying_handler()


def _stable(value: bytes) -> dict[str, object]:
    """An event without the fields that depend on when it was made."""
    doc = json.loads(value)
    for volatile in ("latency_ms", "produced_at", "at"):
        doc.pop(volatile, None)
    return dict(doc)


def _jobs() -> list[tuple[bytes | None, bytes | None, Source]]:
    days = [generate_day(10, 3, seed=s) for s in range(6)] + [generate_day(25, 4, seed=9)]
    jobs: list[tuple[bytes | None, bytes | None, Source]] = [
        (codec.encode(d), d.dispatch_id.encode(), Source("in", 0, i)) for i, d in enumerate(days)
    ]
    jobs += [(b"not json", b"k", Source("in", 1, 0)), (None, None, Source("in", 1, 1))]
    return jobs


async def test_children_prepare_what_the_worker_would(tmp_path: Path) -> None:
    """Every record (audits, Optimized, dead letters) equals in-worker preparing, in order."""
    settings = Settings(model_dir=tmp_path / "models", log_level="WARNING")
    here = settings_handler(settings)
    procs = PrepareProcesses.for_settings(settings, 2, here)
    await procs.start()
    try:
        assert len(procs.pids) == 2
        jobs = _jobs()
        got = await procs.map(jobs)
    finally:
        procs.close()
    want = [here.prepare(*job) for job in jobs]
    assert [p.handled.kind for p in got] == ["optimized"] * 7 + ["dead_letter"] * 2
    for g, w, (raw, _, _) in zip(got, want, jobs, strict=True):
        assert g.raw == raw  # given back by the worker, not sent through the pipe
        assert (g.handled.status, g.handled.event_id) == (w.handled.status, w.handled.event_id)
        assert [(r.topic, r.key) for r in g.audits] == [(r.topic, r.key) for r in w.audits]
        assert [_stable(r.value) for r in g.audits] == [_stable(r.value) for r in w.audits]
        assert _stable(g.final.value) == _stable(w.final.value)
        if w.summary is not None:
            assert g.summary is not None
            assert g.summary.decisions == w.summary.decisions
            assert g.summary.model_version == w.summary.model_version
    assert procs.restarts == 0 and procs.set_aside == 0


async def test_a_child_that_dies_costs_no_message() -> None:
    """A message that kills its child is published as `fallback` without a pass; the others of
    its batch are optimized, and a new child takes over."""
    procs = PrepareProcesses(dying_handler, 1, dying_handler())
    await procs.start()
    try:
        before = procs.pids
        day = generate_day(10, 3, seed=1)
        ok = (codec.encode(day), b"a", Source("in", 0, 0))
        other = day.model_copy(update={"event_id": "e-2", "dispatch_id": "d-2"})
        jobs = [
            ok,
            (DIE, b"b", Source("in", 0, 1)),
            (codec.encode(other), b"c", Source("in", 0, 2)),
        ]
        got = await procs.map(jobs)
        assert [p.handled.kind for p in got] == ["optimized", "dead_letter", "optimized"]
        assert got[0].handled.status != "fallback" and got[2].handled.status != "fallback"
        assert procs.set_aside == 1 and procs.restarts == 2  # the batch, then the message alone
        assert procs.pids and procs.pids != before
        again = await procs.map([ok])  # the new child works
        assert again[0].handled.status == got[0].handled.status
    finally:
        procs.close()


def test_a_valid_day_without_pass_is_its_heuristic_assignment() -> None:
    """What `map` publishes for a valid day that killed its child: status `fallback`, the
    reason, the upstream assignment, no audits."""
    day = generate_day(10, 3, seed=2)
    raw = codec.encode(day)
    fallback = dying_handler().prepare_without_pass(raw, b"k", Source("in", 0, 5), "died")
    opt = json.loads(fallback.final.value)
    assert opt["status"] == "fallback" and opt["reason"] == "died"
    assert opt["assignments"] == json.loads(raw)["assignments"]
    assert fallback.audits == [] and fallback.handled.kind == "optimized"


async def test_children_that_cannot_start_again_leave_the_pass_to_a_thread(
    tmp_path: Path,
) -> None:
    """When a dead child's replacements keep failing to start, its batch goes out without a
    pass, later batches are prepared in the worker (with the pass; nothing stalls), and
    `failed` says why."""
    flag = tmp_path / "no-more-children"
    procs = PrepareProcesses(partial(flagged_handler, str(flag)), 1, dying_handler())
    await procs.start()
    try:
        flag.write_text("")
        day = generate_day(10, 3, seed=3)
        ok = (codec.encode(day), b"a", Source("in", 0, 0))
        got = await procs.map([ok, (DIE, b"b", Source("in", 0, 1)), ok])
        # The batch that killed the child: not run in the worker (its culprit could kill it),
        # published without a pass.
        assert [p.handled.status for p in got] == ["fallback", "dead_letter", "fallback"]
        assert procs.failed is not None and procs.failed.startswith("4 starts failed")
        again = await procs.map([ok])  # later batches: in the worker, with the pass
        assert again[0].handled.kind == "optimized" and again[0].handled.status != "fallback"
    finally:
        procs.close()


async def test_a_held_child_does_not_hold_other_batches() -> None:
    """With the one child busy on a large day, another batch gets an extra child after
    `held_seconds` instead of waiting behind it; the extra child goes once both are idle."""
    import asyncio

    procs = PrepareProcesses(dying_handler, 1, dying_handler(), held_seconds=0.2)
    await procs.start()
    try:
        large = generate_day(1000, 100, seed=3)  # ~4 s of pass here
        small = generate_day(10, 3, seed=4)
        slow = asyncio.create_task(procs.map([(codec.encode(large), b"L", Source("in", 0, 0))]))
        await asyncio.sleep(0.3)  # the child has the large day
        quick = await procs.map([(codec.encode(small), b"s", Source("in", 1, 0))])
        assert not slow.done(), "the small day was answered while the large one still ran"
        assert quick[0].handled.kind == "optimized"
        assert procs.grown == 1 and len(procs.pids) == 2
        assert (await slow)[0].handled.kind == "optimized"
        assert len(procs.pids) == 1  # back to one child once both were idle
    finally:
        procs.close()


async def test_a_long_batch_of_small_days_starts_no_extra_child() -> None:
    """Held means one message taking `held_seconds`, not a batch: a batch of small days that
    takes longer in all starts no extra process (its start costs seconds of CPU)."""
    import asyncio

    procs = PrepareProcesses(dying_handler, 1, dying_handler(), held_seconds=0.4)
    await procs.start()
    try:
        days = [generate_day(10, 3, seed=s) for s in range(200)]  # >= 0.6 s of passes here
        jobs = [(codec.encode(d), b"k", Source("in", 0, i)) for i, d in enumerate(days)]
        await procs.map(jobs[:20])  # one-time costs (CP-SAT import on seed 10) behind us
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        long = asyncio.create_task(procs.map(jobs))
        await asyncio.sleep(0.05)
        quick = await procs.map([(codec.encode(days[0]), b"s", Source("in", 1, 0))])
        assert long.done() and loop.time() - t0 > 0.4  # it waited behind the batch ...
        assert procs.grown == 0 and len(procs.pids) == 1  # ... and no child was added
        assert quick[0].handled.kind == "optimized"
        assert [p.source.offset for p in await long] == list(range(200))
    finally:
        procs.close()


async def test_a_busy_pool_grows_by_one_and_shrinks_when_idle() -> None:
    """A burst (batches waiting for the one child all along) starts one more child, up to
    `max_processes`; the answers are the same; once idle for `shrink_seconds` it stops."""
    import asyncio

    procs = PrepareProcesses(
        dying_handler,
        1,
        dying_handler(),
        held_seconds=60,
        max_processes=2,
        grow_seconds=0.3,
        shrink_seconds=0.5,
        free_cores=0.0,  # whatever else runs on this host meanwhile
    )
    await procs.start()
    try:
        days = [generate_day(10, 3, seed=s) for s in range(20)]
        jobs = [(codec.encode(d), b"k", Source("in", 0, i)) for i, d in enumerate(days)]
        expected = [_stable(p.final.value) for p in await procs.map(jobs)]
        loop = asyncio.get_running_loop()

        async def lane() -> list[list[dict[str, object]]]:
            out = []
            end = loop.time() + 30
            while procs.scaled_up < 1 and loop.time() < end:
                out.append([_stable(p.final.value) for p in await procs.map(jobs)])
            return out

        answers = await asyncio.gather(lane(), lane())  # one always waits for the child
        assert procs.scaled_up == 1 and procs.running == 2, "no second child in 30 s of burst"
        assert all(a == expected for batches in answers for a in batches)
        both = await asyncio.gather(procs.map(jobs), procs.map(jobs))  # the two children serve
        assert [[_stable(p.final.value) for p in b] for b in both] == [expected, expected]
        end = loop.time() + 10
        while procs.running > 1 and loop.time() < end:
            await asyncio.sleep(0.1)
        assert procs.running == 1 and procs.scaled_down == 1 and len(procs.pids) == 1
        assert [_stable(p.final.value) for p in await procs.map(jobs)] == expected
    finally:
        procs.close()


@pytest.mark.parametrize("most, free_cores", [(None, 0.0), (2, 99.0)])
async def test_a_busy_pool_does_not_grow_beyond_its_most_or_the_free_cores(
    most: int | None, free_cores: float
) -> None:
    """`max_processes` None (= processes): a burst keeps the one child; nor does it grow
    on a host whose cores are taken (here: asked for 99 free cores)."""
    import asyncio

    procs = PrepareProcesses(
        dying_handler,
        1,
        dying_handler(),
        held_seconds=60,
        max_processes=most,
        grow_seconds=0.2,
        free_cores=free_cores,
    )
    await procs.start()
    try:
        days = [generate_day(10, 3, seed=s) for s in range(20)]
        jobs = [(codec.encode(d), b"k", Source("in", 0, i)) for i, d in enumerate(days)]
        loop = asyncio.get_running_loop()

        async def lane() -> None:
            end = loop.time() + 1.5
            while loop.time() < end:
                await procs.map(jobs)

        await asyncio.gather(lane(), lane())
        assert procs.scaled_up == 0 and procs.running == 1
    finally:
        procs.close()


def test_the_most_prepare_processes_follows_the_cores(monkeypatch: Any) -> None:
    cores = usable_cpus()  # the affinity, and a container's CPU quota (test_cpu_quota.py)
    assert Settings().prepare_processes_limit() == (2 if cores >= 2 else 1)
    monkeypatch.setenv("DISPATCH_RL_PREPARE_PROCESSES_MAX", "1")
    assert Settings().prepare_processes_limit() == 1
    monkeypatch.setenv("DISPATCH_RL_PREPARE_PROCESSES", "3")
    assert Settings().prepare_processes_limit() == 3  # never below the least


def test_free_cores_from_two_cpu_readings() -> None:
    from streams.prepare_processes import _free_cores, _host_cpu

    cores = os.cpu_count() or 1
    assert _free_cores((100, 1000), (150, 1100)) == pytest.approx(cores * 0.5)
    assert _free_cores(None, (1, 2)) is None and _free_cores((1, 2), (1, 2)) is None
    now = _host_cpu()
    assert now is not None and 0 <= now[0] <= now[1]  # Linux: /proc/stat


def test_a_prepare_process_runs_cp_sat_without_pandas() -> None:
    """`without_pandas`: CP-SAT imports and solves with the stand-in (the child's ~42 MB
    saving), the real pandas is never loaded, and any other use of it says why it fails."""
    import subprocess
    import sys

    code = """
import sys
from streams.prepare_child import without_pandas
assert without_pandas()
from ortools.sat.python import cp_model
m = cp_model.CpModel()
x = m.new_int_var(0, 10, "x")
m.add(2 * x <= 7)
m.maximize(x)
s = cp_model.CpSolver()
s.parameters.num_workers = 1
assert s.solve(m) == cp_model.OPTIMAL and s.value(x) == 3
assert not any(n.startswith("pandas.") for n in sys.modules)
import pandas
try:
    pandas.DataFrame
except AttributeError as exc:
    assert "not loaded in a prepare process" in str(exc)
else:
    raise AssertionError("the stand-in gave an attribute")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
