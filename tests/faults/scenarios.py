"""The fault scenarios, each run against real worker subprocesses and a real broker, each
returning its measured figures. The tests in this folder assert on them; `bench/faults.py`
prints them in one table.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import time
from collections import Counter, defaultdict
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
    """`count` generated 10x3 days with distinct dispatch ids (cached: generating 2,000 takes
    seconds). The generator's per-day seeds can repeat (1 in 1,000 days of seed 777 did), so
    repeats are dropped and made up with more days."""
    out: dict[str, HeuristicDone] = {}
    extra = 0
    while len(out) < count:
        for d in generate_days(count + extra, SMALL, seed=seed):
            out.setdefault(d.dispatch_id, d)
        extra += 10
    return tuple(list(out.values())[:count])


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
            if not await out.until(has_distinct(days), timeout=600, idle=120):
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


def _all_landed(produced: list[Produced | BaseException], ids: list[str]) -> dict[Any, Produced]:
    """Where each input landed, by its key; fails first if the broker refused any (so a missing
    answer below is the workers', not the producer's)."""
    refused = [
        f"{i}: {p!r}" for i, p in zip(ids, produced, strict=True) if not isinstance(p, Produced)
    ]
    assert not refused, f"{len(refused)} inputs refused by the broker: {refused[:3]}"
    return {p.key: p for p in produced if isinstance(p, Produced)}


def _unanswered(answered: set[Any], landed: dict[Any, Produced]) -> str:
    """Which inputs have no Optimized, and where each sits in the input topic."""
    missing = [(k, p) for k, p in landed.items() if k.decode() not in answered]
    where = ", ".join(
        f"{k.decode()} (partition {p.partition}, offset {p.offset})" for k, p in missing[:5]
    )
    return f"{len(landed) - len(missing)} of {len(landed)} Optimized; no answer for {where}"


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
        landed = _all_landed(produced, ids)
        async with TopicLog(settings, settings.topic_optimized) as out:
            if not await out.until(has_distinct(len(ids)), timeout=240, idle=120):
                raise AssertionError(_unanswered(out.distinct(), landed))
            await asyncio.sleep(2)
            await out.catch_up()
            optimized = out.records
        taken = await _dataset_taken_over(b, timeout=30)
    finally:
        a.stop()
        alive = b.alive()
        b.stop()
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


# ------------------------------------------------------------------ broker stop / start


@dataclass
class BrokerRestartFigures:
    days: int
    handled_at_stop: int
    outage_s: float
    output: OutputCheck
    recovery_s: float
    """From the broker answering again to the last dispatch's Optimized visible."""
    worker_alive: bool
    log_lines_in_outage: int
    log_bytes_in_outage: int
    log_warnings_in_outage: int
    """Lines at WARNING or above among them (the rest is INFO progress of queued days)."""
    tracebacks: int
    dataset_missing: int
    dataset_repeated: int


def _warning_lines(lines: list[str]) -> int:
    """JSON log lines at WARNING or above (a line that is not JSON counts: it is unexpected)."""
    n = 0
    for line in lines:
        try:
            level = str(json.loads(line).get("level", "")).lower()
        except (ValueError, AttributeError):
            n += bool(line.strip())
            continue
        n += level in {"warning", "error", "critical", "exception"}
    return n


async def broker_restart_scenario(
    base: Path, *, days: int = 1000, stop_after: int = 300, outage_s: float = 8.0
) -> BrokerRestartFigures:
    """A durable broker of our own (fixed ports, one data dir); mid-stream it is stopped
    (SIGTERM), left down `outage_s` seconds and started again on the same data dir. The
    worker keeps running throughout; half the days are published before the outage and
    half after it."""
    from streams.local_kafka import LocalKafka
    from streams.local_kafka.process import free_ports

    port, controller = free_ports(2)
    kafka = LocalKafka(base / "broker", port=port, controller_port=controller)
    kafka.start()
    worker: WorkerProcess | None = None
    try:
        settings = fault_settings(kafka.bootstrap, base)
        await ensure_topics(settings)
        batch = list(small_days(days, seed=777))
        first, second = batch[: days // 2], batch[days // 2 :]
        ids = [d.dispatch_id for d in batch]
        worker = WorkerProcess(worker_env(settings), base / "worker.log").start()
        await worker.wait_for("worker_running")
        await produce(settings, keyed(first))
        async with TopicLog(settings, settings.topic_optimized) as out:
            if not await out.until(has_distinct(stop_after), timeout=300):
                raise AssertionError(f"only {len(out.distinct())} Optimized before the stop")
            await out.poll()
            handled = len(out.distinct())
        log_before = len(worker.text().encode())
        lines_before = worker.text().count("\n")
        stopped = time.monotonic()
        kafka.stop()
        await asyncio.sleep(outage_s)
        kafka.start()
        outage = time.monotonic() - stopped
        # what the worker logged while the broker was away (stop, outage, restart)
        log_during = len(worker.text().encode()) - log_before
        lines_during = worker.text().count("\n") - lines_before
        warnings_during = _warning_lines(worker.text().splitlines()[lines_before:])
        back = time.monotonic()
        await produce(settings, keyed(second))
        async with TopicLog(settings, settings.topic_optimized) as out:
            if not await out.until(has_distinct(days), timeout=600, idle=120):
                raise AssertionError(f"{len(out.distinct())} of {days} Optimized after restart")
            recovery = time.monotonic() - back
            await asyncio.sleep(2)
            await out.catch_up()
            optimized = out.records
        await dataset_caught_up(settings, timeout=120)
        alive = worker.alive()
    finally:
        if worker is not None:
            worker.stop()
        kafka.stop()
    counts = dataset_counts(settings.dataset_dir)
    return BrokerRestartFigures(
        days=days,
        handled_at_stop=handled,
        outage_s=outage,
        output=check_optimized(optimized, ids),
        recovery_s=recovery,
        worker_alive=alive,
        log_lines_in_outage=lines_during,
        log_bytes_in_outage=log_during,
        log_warnings_in_outage=warnings_during,
        tracebacks=worker.tracebacks(),
        dataset_missing=sum(
            counts[(kind, d)] == 0 for d in ids for kind in ("heuristic_done", "optimized")
        ),
        dataset_repeated=sum(c - 1 for c in counts.values() if c > 1),
    )


# ------------------------------------------------------------------ fuzzed input


@dataclass
class FuzzFigures:
    inputs: int
    by_kind: dict[str, int]
    expected_optimized: int
    expected_dead_letter: int
    expected_refused: int
    optimized_missing: dict[str, int]
    """Inputs that should have an Optimized and have none, by kind."""
    dead_letter_missing: dict[str, int]
    """Inputs that should have a DeadLetter and have none, by kind."""
    refused_wrongly: dict[str, int]
    """Inputs the broker refused that it should have taken (or took that it should refuse)."""
    dead_letters_for_valid: int
    inconsistent: int
    duplicates_optimized: int
    duplicates_dead_letter: int
    worker_alive: bool
    tracebacks: int
    elapsed_s: float


async def fuzz_scenario(
    bootstrap: str, base: Path, *, total: int = 10_050, valid: int = 1_000
) -> FuzzFigures:
    """One worker gets `total` inputs: `valid` generated days interleaved with malformed ones
    (see `tests.faults.fuzz`). Every valid day must be answered once, every malformed one
    dead-lettered once (matched by its source partition and offset), the worker alive."""
    from tests.faults.fuzz import fuzz_inputs

    inputs = fuzz_inputs(total, valid)
    settings = fault_settings(bootstrap, base)
    await ensure_topics(settings)
    worker = WorkerProcess(worker_env(settings), base / "worker.log").start()
    try:
        await worker.wait_for("worker_running")
        started = time.monotonic()
        produced = await produce(settings, [(x.key, x.value) for x in inputs])  # type: ignore[misc]
        refused_wrongly: Counter[str] = Counter()
        want_opt: dict[str, str] = {}
        want_dl: dict[tuple[int, int], str] = {}
        valid_positions: set[tuple[int, int]] = set()
        for x, p in zip(inputs, produced, strict=True):
            if isinstance(p, BaseException) != (x.expect == "refused"):
                refused_wrongly[x.kind] += 1
            if not isinstance(p, Produced):
                continue
            if x.expect == "optimized":
                doc = json.loads(x.value or b"{}")
                want_opt[doc["dispatch_id"]] = x.kind
                valid_positions.add((p.partition, p.offset))
            elif x.expect == "dead_letter":
                want_dl[(p.partition, p.offset)] = x.kind
        async with (
            TopicLog(settings, settings.topic_optimized) as out,
            TopicLog(settings, settings.topic_dead_letter) as dead,
        ):
            deadline = time.monotonic() + 900
            last = time.monotonic()
            # Stop at completion, at the deadline, or after 90 s without any new output.
            while time.monotonic() < min(deadline, last + 90) and worker.alive():
                if await out.poll(100) + await dead.poll(100):
                    last = time.monotonic()
                if len(out.distinct() & want_opt.keys()) >= len(want_opt) and len(
                    _positions(dead.docs) & want_dl.keys()
                ) >= len(want_dl):
                    break
            elapsed = time.monotonic() - started
            await asyncio.sleep(2)
            await out.catch_up()
            await dead.catch_up()
        alive = worker.alive()
    finally:
        worker.stop()
    got_dl = _positions(dead.docs)
    output = check_optimized(out.records, want_opt)
    missing_opt = Counter(want_opt[d] for d in output.lost)
    missing_dl = Counter(kind for pos, kind in want_dl.items() if pos not in got_dl)
    dl_positions = [(d.get("source_partition"), d.get("source_offset")) for d in dead.docs]
    return FuzzFigures(
        inputs=len(inputs),
        by_kind=dict(Counter(x.kind for x in inputs)),
        expected_optimized=len(want_opt),
        expected_dead_letter=len(want_dl),
        expected_refused=sum(x.expect == "refused" for x in inputs),
        optimized_missing=dict(missing_opt),
        dead_letter_missing=dict(missing_dl),
        refused_wrongly=dict(refused_wrongly),
        dead_letters_for_valid=len(got_dl & valid_positions),
        inconsistent=len(output.inconsistent),
        duplicates_optimized=output.duplicates,
        duplicates_dead_letter=len(dl_positions) - len(set(dl_positions)),
        worker_alive=alive,
        tracebacks=worker.tracebacks(),
        elapsed_s=elapsed,
    )


def _positions(docs: list[dict[str, Any]]) -> set[tuple[int, int]]:
    return {
        (d["source_partition"], d["source_offset"])
        for d in docs
        if "source_partition" in d and "source_offset" in d
    }


# ------------------------------------------------------------------ model faults


@dataclass
class ModelFaultFigures:
    default_version: str
    results: dict[str, dict[str, Any]]
    """Per fault: `served` (model_version of the day published after it), `health_says`
    (the health endpoint's reason text), `fell_back` (the shipped default served)."""
    pickle_executed: bool
    worker_alive: bool
    tracebacks: int


MODEL_FAULTS = ("corrupt", "missing", "wrong_shape", "nan", "malicious_pickle")


def _write_broken(registry: Path, fault: str, marker: Path) -> str:
    """A version directory copied from the shipped model, then broken as `fault` says; for
    the faults a checksum would catch first (shape, NaN, pickle) the recorded sha256 is
    edited to match, as a hand-edit would, so the deeper check is the one exercised."""
    import hashlib
    import io
    import shutil

    import numpy as np

    from optimizer.registry import DEFAULT_MODEL_DIR

    version = f"broken-{fault}"
    vdir = registry / "versions" / version
    shutil.copytree(DEFAULT_MODEL_DIR, vdir, ignore=shutil.ignore_patterns("evaluation", "*.jsonl"))
    meta_path = vdir / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = version
    weights = vdir / str(meta.get("weights_file", "model.npz"))
    if fault == "corrupt":
        data = bytearray(weights.read_bytes())
        for i in range(100, len(data), 97):
            data[i] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif fault == "missing":
        weights.unlink()
    else:
        with np.load(weights, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if fault == "wrong_shape":
            arrays["layer0.weight"] = np.zeros((64, 10), dtype=np.float32)
        elif fault == "nan":
            arrays["layer0.weight"] = arrays["layer0.weight"].copy()
            arrays["layer0.weight"][0, 0] = np.nan
        elif fault == "malicious_pickle":
            arrays["layer0.weight"] = np.array([_Payload(str(marker))], dtype=object)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        weights.write_bytes(buf.getvalue())
        meta["weights_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    meta_path.write_text(json.dumps(meta))
    return version


class _Payload:
    """Unpickling this runs code (creates `marker`): what a model file must never do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def _point_champion(registry: Path, version: str) -> None:
    meta = json.loads((registry / "versions" / version / "metadata.json").read_text())
    doc = {
        "version": version,
        "weights_sha256": meta["weights_sha256"],
        "checksums": {version: meta["weights_sha256"]},
        "history": ["default"],
        "reason": "fault injection",
    }
    tmp = registry / ".champion.json.tmp"
    tmp.write_text(json.dumps(doc))
    tmp.replace(registry / "champion.json")


def _health(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/dispatch/health/", timeout=5) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


async def model_fault_scenario(bootstrap: str, base: Path) -> ModelFaultFigures:
    """One worker, its registry's champion broken five ways in turn: first at start (corrupt
    file), then by hot reload. After each, a published day must be served by the shipped
    default model and the health endpoint must say why the champion was refused."""
    from optimizer.registry import DEFAULT_MODEL_DIR
    from streams.ports import listen_socket

    default_version = json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text())["version"]
    registry = base / "models"
    marker = base / "PICKLE-RAN"
    settings = fault_settings(bootstrap, base)
    await ensure_topics(settings)
    probe = listen_socket("127.0.0.1", 0)
    port = probe.port
    probe.sock.close()
    env = worker_env(
        settings,
        DISPATCH_RL_WEB_ENABLED="true",
        DISPATCH_RL_WEB_PORT=str(port),
        DISPATCH_RL_MODEL_POLL_SECONDS="0.5",
        DISPATCH_RL_STORE_ENABLED="false",
    )
    _point_champion(registry, _write_broken(registry, MODEL_FAULTS[0], marker))
    worker = WorkerProcess(env, base / "worker.log", "run", "--optimizer-only")
    results: dict[str, dict[str, Any]] = {}
    try:
        worker.start()
        await worker.wait_for("worker_running")
        seed = 0
        async with TopicLog(settings, settings.topic_optimized) as out:
            for fault in MODEL_FAULTS:
                version = f"broken-{fault}"
                if fault != MODEL_FAULTS[0]:
                    _write_broken(registry, fault, marker)
                    _point_champion(registry, version)
                said = await _health_mentions(port, version, timeout=30)
                seed += 1
                day = generate_days(1, [(12, 3)], seed=9000 + seed)[0]
                await produce(settings, keyed([day]))
                await out.until(lambda log, d=day.dispatch_id: d in log.distinct(), timeout=60)
                served = next(
                    (
                        doc.get("model_version")
                        for doc in out.docs
                        if doc.get("dispatch_id") == day.dispatch_id
                    ),
                    None,
                )
                results[fault] = {
                    "served": served,
                    "health_says": said,
                    "fell_back": served == default_version,
                }
        alive = worker.alive()
    finally:
        worker.stop()
    return ModelFaultFigures(
        default_version=default_version,
        results=results,
        pickle_executed=marker.exists(),
        worker_alive=alive,
        tracebacks=worker.tracebacks(),
    )


async def _health_mentions(port: int, version: str, timeout: float) -> str | None:
    """The health endpoint's text about `version`'s refusal, once it mentions it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            doc = await asyncio.get_running_loop().run_in_executor(None, _health, port)
            reason = _reason_in(doc, version)
            if reason is not None:
                return reason
        await asyncio.sleep(0.5)
    return None


def _reason_in(doc: Any, version: str) -> str | None:
    """The first string in the health document that names `version` in a sentence (the
    refusal reason; a field holding just the version, like `champion`, is not one)."""
    if isinstance(doc, str):
        return doc if version in doc and doc.strip() != version else None
    if isinstance(doc, dict):
        doc = list(doc.values())
    if isinstance(doc, list):
        for v in doc:
            found = _reason_in(v, version)
            if found:
                return found
    return None
