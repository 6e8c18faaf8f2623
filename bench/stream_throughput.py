"""Stream throughput and end-to-end latency of optimizer workers on a real broker.

Every figure comes from workers run as separate processes (`python -m streams.cli run
--optimizer-only`, the shipped default model serving, logs at WARNING, the audit store off
but in the "+ store" row) on fresh topics with `--partitions` partitions, fed and read by this
process with aiokafka. Each row also gives the workers' CPU time (user + system, from /proc)
per dispatch, which depends much less on what else loads the machine than the rates do.
`--worker-env KEY=VALUE` passes settings to the workers (e.g. `DISPATCH_RL_ENABLED=false`: no
pass, to measure everything around it).

1. **burst**, per pipeline and worker count: publish N days as fast as the producer goes and
   read `dispatch.optimized` until all N are visible; dispatches/s = N / (last output visible -
   first produce). `serial` is the old path (`DISPATCH_RL_PIPELINED=false`: one message at a
   time, each waiting for its acknowledgements); `in-thread` the pipeline with the pass in a
   thread of the worker (`DISPATCH_RL_PREPARE_PROCESSES=0`, the previous default);
   `pipelined` the default (`--processes` prepare processes per worker, growing under the
   burst up to `DISPATCH_RL_PREPARE_PROCESSES_MAX`); `fixed-pool` the same with the pool held
   at `--processes`. Ratios: pipelined vs serial, vs in-thread and vs fixed-pool (1 worker),
   and 2 workers vs 1 (pipelined).
   `+ store`: one pipelined worker that also runs the audit store consumer; `make-run`: the
   worker as `make run` starts it (`dispatch-rl run`: optimizer, audit store and dataset
   writer in one process, logs at INFO; the web server off).
   Columns: `cpu ms/disp` counts the prepare processes too, `of it pass` is their part,
   `procs` how many the workers ran at the end of the row;
   `pass p99` is the p99 of the `Optimized` events' own `latency_ms` (decode, pass, encode):
   set against the end-to-end p99, it tells how much of the tail is the pass and how much is
   waiting (queues, the broker, the CPU's other users).
2. **steady**: one pipelined worker fed at `--rate` days/s (default and in-thread);
   latency = output visible - produce.
3. **large day** (`--large`, e.g. 2000x200): one large day on partition 0, then small days on
   the other partitions at 20/s while it runs; the small days' latency shows whether the large
   one holds them (serial vs pipelined).

4. **scaling out** (`--worker-cpus C`): each worker, with its prepare processes, runs in a
   cgroup of its own with a CPU quota of C CPUs, standing in for a host of that size; the
   broker and this process stay outside. The "2 workers / 1 worker" ratio then shows whether
   a second worker that brings its own CPU adds its share, which one 2-core host cannot show
   otherwise (one unbounded worker fills it). The rows say in how many 100 ms periods each
   quota was used up: near 100 %, the quota was what bound the worker.

The broker: `--bootstrap` or `KAFKA_BOOTSTRAP_SERVERS`, else a local one (`streams.local_kafka`)
started for the run and stopped after.

    python bench/stream_throughput.py                       # 10x3: all of the above but --large
    python bench/stream_throughput.py --large 2000x200      # plus the large-day check
    python bench/stream_throughput.py --worker-cpus 0.5 --skip serial,thread,fixed,store,steady
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from optimizer.generate import generate_day, generate_days  # noqa: E402
from schemas import HeuristicDone  # noqa: E402
from streams import stage_trace  # noqa: E402
from streams.cpu_quota import QuotaGroup  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import (  # noqa: E402
    MAX_MESSAGE_BYTES,
    client_options,
    ensure_topics,
    topic_specs,
)

_FULL_RUN = "BENCH_FULL_RUN"  # a row's env marker: the worker runs as under `make run`


@dataclass
class Figures:
    what: str
    days: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms: float = float("nan")
    """Worker CPU time (user + system, all workers) per dispatch during the run."""
    child_cpu_ms: float = float("nan")
    """The part of `cpu_ms` spent in the workers' prepare processes (the pass)."""
    stages: list[tuple[str, float, float, float, float]] | None = None
    """With `--stages`: per stage, p50, p90, p99 (ms) and the mean over the slowest 2 %."""
    collections: list[str] | None = None
    """With `--stages`: per process (the bench, each worker, each prepare process), its garbage
    collections of 2 ms or more during the row."""
    worker_cpu_ms: list[float] | None = None
    """Each worker's share of `cpu_ms` (its process tree's CPU per dispatch of the row)."""
    broker_cpu_ms: float = float("nan")
    """The local broker's CPU per dispatch during the row (nan: an external broker)."""
    bench_cpu_ms: float = float("nan")
    """This process's (producer and consumer of the row) CPU per dispatch during the row."""
    children: int = 0
    """The workers' prepare processes alive when the row's last result was visible."""
    throttled: list[float] | None = None
    """With `--worker-cpus`: per worker, the share of the row's 100 ms periods in which its
    quota was used up (near 1: the quota bound it, as a host of that size would)."""
    pass_p99_ms: float = float("nan")
    """p99 of the `Optimized` events' own `latency_ms` (decode, pass, encode, in the worker):
    against the end-to-end p99, how much of the tail is the pass and how much waiting."""


def _cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> tuple[float, float]:
    """User + system CPU seconds the worker processes and their live children (prepare
    processes) used so far, and the children's part (Linux /proc)."""
    # pid -> (parent pid, utime + stime ticks, cutime + cstime ticks: its exited children's)
    stats: dict[int, tuple[int, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                # ppid, utime, stime, cutime, cstime: fields 4, 14-17 of proc(5)
                stats[int(entry.name)] = (
                    int(fields[1]),
                    int(fields[11]) + int(fields[12]),
                    int(fields[13]) + int(fields[14]),
                )
    wanted = {p.pid for p in procs}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _, _) in stats.items() if ppid in wanted} - wanted
        grew = bool(more)
        wanted |= more
    # A prepare process that was stopped (an extra one) or replaced counts too: the worker
    # reaped it, so its CPU is in the worker's cutime/cstime.
    total = sum(stats[pid][1] + stats[pid][2] for pid in wanted if pid in stats)
    own = sum(stats[p.pid][1] for p in procs if p.pid in stats)
    tick = os.sysconf("SC_CLK_TCK")
    return total / tick, (total - own) / tick


def _children(procs: list[subprocess.Popen[bytes]]) -> int:
    """How many processes the workers have started and not stopped (their prepare processes)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
    wanted = {p.pid for p in procs}
    found = set(wanted)
    while more := {pid for pid, ppid in parents.items() if ppid in found} - found:
        found |= more
    return len(found - wanted)


def _side_cpu_seconds(broker_pid: int | None) -> tuple[float, float]:
    """CPU seconds (user + system) of the local broker (nan when external) and of this
    process, so far: what the rest of the bench's path costs beside the workers."""
    broker = float("nan")
    if broker_pid is not None:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{broker_pid}/stat").read_text().rsplit(")", 1)[1].split()
            broker = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return broker, own.user + own.system


STAGES = (
    ("sent", "in_ts", "bench producer -> broker append"),
    ("in_ts", "agent", "broker -> worker fetch -> Faust stream -> agent"),
    ("agent", "prep0", "lane picks it up"),
    ("prep0", "c_recv", "wait for a prepare process, pipe"),
    ("c_recv", "c_done", "in the prepare process (its batch before it + itself)"),
    ("c_done", "prep1", "back to the lane (pipe, rest of its lane batch)"),
    ("prep1", "round0", "wait for a send round"),
    ("round0", "aud1", "audits sent and acknowledged"),
    ("aud1", "final_ts", "Optimized sent -> broker append"),
    ("final_ts", "visible", "broker -> bench consumer"),
    ("aud1", "fin1", "Optimized acknowledged (worker)"),
    ("fin1", "acked", "input offset acked"),
)
"""Stage pairs of `--stages` (stamps: `streams.stage_trace`, and the bench's own); the rows
down to `final_ts -> visible` add up to the end-to-end latency."""


async def _log_append_time(settings: Settings) -> None:
    """Let the broker stamp the bench topics' records when it appends them (`--stages`)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    # AlterConfigs replaces a topic's whole config: the wanted ones go along (without them
    # max.message.bytes fell back to the broker's 1 MB default and the worker logged it).
    wanted = {s.name: s.configs for s in topic_specs(settings)}
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    t,
                    wanted[t] | {"message.timestamp.type": "LogAppendTime"},
                )
                for t in (settings.topic_input, settings.topic_optimized)
            ]
        )
    finally:
        await admin.close()


def _collections(
    prefix: Path,
    worker_pids: set[int],
    own: list[tuple[float, float, int]],
    since: float,
    until: float,
) -> list[str]:
    """One line per process: its collections of 2 ms or more between `since` and `until`
    (wall): how many, how long in all, the longest, and when (s into the row)."""
    per: dict[str, list[tuple[float, float, int]]] = {"bench": own}
    for path in prefix.parent.glob(f"{prefix.name}.*"):
        pid = path.name.rsplit(".", 1)[1]
        if not pid.isdigit():
            continue
        who = f"{'worker' if int(pid) in worker_pids else 'prepare process'} {pid}"
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            if "gc" in doc:
                per.setdefault(who, []).append((doc["gc"], doc["seconds"], doc["generation"]))
    out = []
    for who, found in per.items():
        found = [c for c in found if since <= c[0] <= until]
        if not found:
            out.append(f"{who}: none")
            continue
        start, took, gen = max(found, key=lambda c: c[1])
        out.append(
            f"{who}: {len(found)}, {sum(c[1] for c in found) * 1000:.0f} ms in all, longest "
            f"{took * 1000:.0f} ms (generation {gen}) at {start - since:+.2f} s"
        )
    return out


def _stage_rows(
    prefix: Path, wall: dict[str, dict[str, float]]
) -> list[tuple[str, float, float, float, float]]:
    """Per stage of `STAGES`: p50, p90, p99 and the slowest 2 %'s mean, in ms, over the
    messages every process stamped (`wall`: the bench's stamps by key)."""
    stamps = {k: dict(v) for k, v in wall.items()}
    for path in prefix.parent.glob(f"{prefix.name}.*"):
        if path.name.endswith(".joined.jsonl"):
            continue
        for line in path.read_text().splitlines():
            doc = json.loads(line)
            if doc.get("key") in stamps:
                stamps[doc.pop("key")].update(doc)
    names = {a for a, _, _ in STAGES} | {b for _, b, _ in STAGES}
    rows = [s for s in stamps.values() if names <= s.keys()]
    with open(f"{prefix}.joined.jsonl", "w") as f:  # every message's stamps, for a closer look
        for s in rows:
            f.write(json.dumps(s) + "\n")
    if not rows:
        return []
    slow = sorted(rows, key=lambda s: s["visible"] - s["sent"])[-max(1, len(rows) // 50) :]
    out = []
    for a, b, what in STAGES:
        ms = [(s[b] - s[a]) * 1000 for s in rows]
        out.append(
            (
                f"{a} -> {b}: {what}",
                _pct(ms, 0.5),
                _pct(ms, 0.9),
                _pct(ms, 0.99),
                statistics.mean((s[b] - s[a]) * 1000 for s in slow),
            )
        )
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[tuple[str, str, int | None]]:
    if bootstrap:
        yield bootstrap, "external", None
        return
    from streams.local_kafka import KAFKA_VERSION, LocalKafka

    with LocalKafka() as kafka:
        yield kafka.bootstrap, f"local launcher, Apache Kafka {KAFKA_VERSION}", kafka.pid


def _settings(bootstrap: str, tag: str, partitions: int) -> Settings:
    return Settings(
        bootstrap_servers=bootstrap,
        app_id=f"bench-{tag}",
        dataset_group=f"bench-dataset-{tag}",
        topic_input=f"bench.{tag}.heuristic_done",
        topic_optimized=f"bench.{tag}.optimized",
        topic_audit=f"bench.{tag}.swap_audit",
        topic_dead_letter=f"bench.{tag}.dead_letter",
        topic_partitions=partitions,
        web_enabled=False,
    )


def _worker_env(
    settings: Settings, state_dir: Path, pipelined: bool, store: bool, extra: dict[str, str]
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_RL_")}
    env.update(
        {
            "DISPATCH_RL_BOOTSTRAP_SERVERS": settings.bootstrap_servers or "",
            "DISPATCH_RL_APP_ID": settings.app_id,
            "DISPATCH_RL_TOPIC_INPUT": settings.topic_input,
            "DISPATCH_RL_TOPIC_OPTIMIZED": settings.topic_optimized,
            "DISPATCH_RL_TOPIC_AUDIT": settings.topic_audit,
            "DISPATCH_RL_TOPIC_DEAD_LETTER": settings.topic_dead_letter,
            "DISPATCH_RL_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "DISPATCH_RL_WEB_ENABLED": "false",
            "DISPATCH_RL_LOG_LEVEL": "WARNING",
            "DISPATCH_RL_LOG_FORMAT": "json",
            "DISPATCH_RL_STATE_DIR": str(state_dir),
            "DISPATCH_RL_DATASET_DIR": str(state_dir / "dataset"),
            "DISPATCH_RL_PIPELINED": "true" if pipelined else "false",
            "DISPATCH_RL_STORE_ENABLED": "true" if store else "false",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    # An empty registry of its own: the shipped default model serves, as in a fresh install.
    env["DISPATCH_RL_MODEL_DIR"] = str(state_dir / "models")
    return env


class Harness:
    """A producer and a consumer of the optimized topic, in the measuring process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.visible: dict[bytes, float] = {}
        self.pass_ms: dict[bytes, float] = {}
        self.wall: dict[bytes, dict[str, float]] = {}
        """Per key, wall-clock (Unix s) `sent`, `visible`, and the broker's timestamps `in_ts`
        (input) and `final_ts` (its `Optimized`): with `--stages`, the topics are set to
        LogAppendTime, so these are when the broker appended each record."""
        self.producer = AIOKafkaProducer(
            acks="all", linger_ms=2, max_request_size=MAX_MESSAGE_BYTES, **client_options(settings)
        )
        self.consumer = AIOKafkaConsumer(
            settings.topic_optimized,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **client_options(settings),
        )
        self._task: asyncio.Task[None] | None = None
        self.model_version = "?"

    async def __aenter__(self) -> Harness:
        await self.producer.start()
        await self.consumer.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.consumer.stop()
        await self.producer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            wnow = time.time()
            for records in batches.values():
                for r in records:
                    w = self.wall.setdefault(r.key, {})
                    w.setdefault("visible", wnow)
                    w.setdefault("final_ts", r.timestamp / 1000)
                    if r.key not in self.visible:
                        doc = json.loads(r.value)
                        self.model_version = doc["model_version"]
                        self.pass_ms[r.key] = doc["latency_ms"]
                    self.visible.setdefault(r.key, now)

    async def send(
        self,
        days: list[tuple[bytes, bytes]],
        rate: float | None,
        partition: int | None = None,
    ) -> dict[bytes, float]:
        sent: dict[bytes, float] = {}
        futures = []
        start = time.perf_counter()
        for i, (key, value) in enumerate(days):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent[key] = time.perf_counter()
            self.wall.setdefault(key, {})["sent"] = time.time()
            futures.append(
                await self.producer.send(
                    self.settings.topic_input, value, key=key, partition=partition
                )
            )
        for (key, _), meta in zip(days, await asyncio.gather(*futures), strict=True):
            self.wall[key]["in_ts"] = meta.timestamp / 1000
        return sent

    async def wait_for(self, keys: set[bytes], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while keys - self.visible.keys():
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(keys - self.visible.keys())} results missing")
            await asyncio.sleep(0.01)


def _encode(days: list[HeuristicDone], prefix: str) -> list[tuple[bytes, bytes]]:
    out = []
    for i, d in enumerate(days):
        d = d.model_copy(update={"event_id": f"evt-{prefix}-{i}", "dispatch_id": f"{prefix}-{i}"})
        out.append((d.dispatch_id.encode(), d.model_dump_json().encode()))
    return out


def _figures(
    what: str, sent: dict[bytes, float], visible: dict[bytes, float], pass_ms: dict[bytes, float]
) -> Figures:
    latencies = [(visible[k] - t) * 1000 for k, t in sent.items()]
    passes = [pass_ms[k] for k in sent if k in pass_ms]
    seconds = max(visible[k] for k in sent) - min(sent.values())
    return Figures(
        what,
        len(sent),
        seconds,
        len(sent) / seconds,
        statistics.median(latencies),
        _pct(latencies, 0.99),
        max(latencies),
        pass_p99_ms=_pct(passes, 0.99) if passes else float("nan"),
    )


def _pin_to(cpu: int | None) -> Callable[[], None] | None:
    """For `Popen(preexec_fn=...)`: the child (and what it starts) runs on `cpu` only."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _preexec(pin: int | None, quota: QuotaGroup | None) -> Callable[[], None] | None:
    """For `Popen(preexec_fn=...)`: --pin and --worker-cpus, either or both."""
    steps = [f for f in (_pin_to(pin), quota.enter if quota else None) if f]
    if not steps:
        return None

    def run() -> None:
        for step in steps:
            step()

    return run


@contextlib.contextmanager
def _workers(
    settings: Settings,
    n: int,
    args: argparse.Namespace,
    pipelined: bool,
    store: bool = False,
    env: dict[str, str] | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    state_dir = args.state_dir
    extra = (env or {}) | dict(kv.split("=", 1) for kv in args.worker_env)
    procs: list[subprocess.Popen[bytes]] = []
    quotas: list[QuotaGroup] = []
    try:
        for i in range(n):
            state = state_dir / f"{settings.app_id}-{i}"
            state.mkdir(parents=True, exist_ok=True)
            if args.worker_cpus:
                try:
                    quotas.append(QuotaGroup.create(f"{settings.app_id}-{i}", args.worker_cpus))
                except OSError as exc:
                    raise SystemExit(
                        f"--worker-cpus: cannot create a cgroup here ({exc}); it needs write "
                        "access to a cgroup file system with the cpu controller (root)"
                    ) from None
            procs.append(
                subprocess.Popen(
                    # `make run`'s worker (store and dataset writer in-process) when the row
                    # asks for it, else the optimizer alone.
                    [sys.executable, "-m", "streams.cli", "run"]
                    + ([] if extra.get(_FULL_RUN) else ["--optimizer-only"]),
                    env=_worker_env(settings, state, pipelined, store, extra),
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=(state_dir / f"{settings.app_id}-{i}.log").open("wb"),
                    # --pin: worker i and its prepare processes on CPU i (mod the count)
                    preexec_fn=_preexec(
                        i % (os.cpu_count() or 1) if args.pin else None,
                        quotas[i] if quotas else None,
                    ),
                )
            )
        args.quotas = quotas
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for q in quotas:
            q.remove()


async def _warm(h: Harness, pool: list[HeuristicDone], tag: str, workers: int) -> None:
    """Answered warm-up days on every partition; with 2 workers, until both took partitions."""
    for round_ in range(20):
        warm = _encode(pool[:30], f"warm{round_}-{tag}")
        await h.send(warm, None)
        await h.wait_for({k for k, _ in warm}, timeout=180)
        if workers == 1 or round_ >= 2:
            return
        await asyncio.sleep(2)  # let the second member join and the group settle


async def _run(
    bootstrap: str,
    what: str,
    size: tuple[int, int],
    days: int,
    rate: float | None,
    workers: int,
    pipelined: bool,
    store: bool,
    args: argparse.Namespace,
    env: dict[str, str],
) -> Figures:
    tag = f"{what.split()[0]}-{uuid.uuid4().hex[:8]}"
    settings = _settings(bootstrap, tag, args.partitions)
    await ensure_topics(settings)
    if args.stages:
        await _log_append_time(settings)
        env = env | {stage_trace.ENV: str(args.state_dir / f"stages-{tag}")}
    pool = generate_days(50, [size], seed=size[0])
    batch = _encode([pool[i % len(pool)] for i in range(days)], f"b-{tag}")
    with _workers(settings, workers, args, pipelined, store, env) as procs:
        async with Harness(settings) as h:
            await _warm(h, pool, tag, workers)
            cpu, child = _cpu_seconds(procs)
            each = [_cpu_seconds([p])[0] for p in procs]
            side = _side_cpu_seconds(args.broker_pid)
            worker_pids = {p.pid for p in procs}
            periods = [q.throttled() for q in args.quotas]
            sent = await h.send(batch, rate)
            await h.wait_for(set(sent), timeout=900)
            periods = [
                (q.throttled()[1] - held) / max(1, q.throttled()[0] - total)
                for q, (total, held) in zip(args.quotas, periods, strict=True)
            ]
            children = _children(procs)
            cpu_after, child_after = _cpu_seconds(procs)
            each = [_cpu_seconds([p])[0] - e for p, e in zip(procs, each, strict=True)]
            broker_ms, bench_ms = (
                (a - b) * 1000 / len(sent)
                for a, b in zip(_side_cpu_seconds(args.broker_pid), side, strict=True)
            )
            wall = {k.decode(): h.wall[k] for k in sent}
            print(f"  {what}: served by {h.model_version}", file=sys.stderr)
            figures = replace(
                _figures(what, sent, h.visible, h.pass_ms),
                cpu_ms=(cpu_after - cpu) * 1000 / len(sent),
                child_cpu_ms=(child_after - child) * 1000 / len(sent),
                worker_cpu_ms=[e * 1000 / len(sent) for e in each],
                broker_cpu_ms=broker_ms,
                bench_cpu_ms=bench_ms,
                children=children,
                throttled=periods or None,
            )
    if args.stages:  # the workers have stopped: their stamps are written
        prefix = args.state_dir / f"stages-{tag}"
        figures.stages = _stage_rows(prefix, wall)
        figures.collections = _collections(
            prefix,
            worker_pids,
            stage_trace.collections(),
            min(w["sent"] for w in wall.values()),
            max(w["visible"] for w in wall.values()),
        )
    return figures


async def _large_day(
    bootstrap: str,
    large: tuple[int, int],
    label: str,
    pipelined: bool,
    env: dict[str, str],
    args: argparse.Namespace,
) -> Figures:
    """Small days on the other partitions while a large day runs on partition 0."""
    what = f"{label}: 10x3 beside {large[0]}x{large[1]}"
    tag = f"large-{uuid.uuid4().hex[:8]}"
    settings = _settings(bootstrap, tag, args.partitions)
    await ensure_topics(settings)
    big = _encode([generate_day(*large, seed=5)], f"big-{tag}")
    small_pool = generate_days(20, [(10, 3)], seed=3)
    small = _encode([small_pool[i % 20] for i in range(args.large_small_days)], f"s-{tag}")
    with _workers(settings, 1, args, pipelined, env=env):
        async with Harness(settings) as h:
            await _warm(h, small_pool, tag, 1)
            await h.send(big, None, partition=0)
            await asyncio.sleep(1.0)  # the large pass is running
            sent: dict[bytes, float] = {}
            n_parts = args.partitions
            for i, item in enumerate(small):
                sent.update(await h.send([item], None, partition=1 + i % (n_parts - 1)))
                await asyncio.sleep(1 / 20)
            await h.wait_for(set(sent) | {big[0][0]}, timeout=900)
            big_s = h.visible[big[0][0]] - min(sent.values())
            print(
                f"  {what}: large day visible {big_s:.1f} s after the first small", file=sys.stderr
            )
            return _figures(what, sent, h.visible, h.pass_ms)


def _size(text: str) -> tuple[int, int]:
    n, k = (int(x) for x in text.split("x"))
    return n, k


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--size", type=_size, default=(10, 3), help="BOOKINGSxDRIVERS")
    parser.add_argument("--days", type=int, default=2000, help="days per burst")
    parser.add_argument("--serial-days", type=int, default=600, help="days of the serial burst")
    parser.add_argument("--rate", type=float, default=100.0, help="steady rate, days/s")
    parser.add_argument("--steady-days", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--large", type=_size, default=None, help="e.g. 2000x200")
    parser.add_argument("--large-small-days", type=int, default=200)
    parser.add_argument(
        "--skip", default="", help="comma list: serial,thread,fixed,two,steady,store"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=Settings.model_fields["prepare_processes"].default,
        help="DISPATCH_RL_PREPARE_PROCESSES of the pipelined rows (0: in-thread)",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the workers (e.g. DISPATCH_RL_MAX_SWAPS=1 for profiling)",
    )
    parser.add_argument(
        "--warm-days",
        type=int,
        default=0,
        help="an unreported burst of this many days first (the broker's JIT warm, as in "
        "production; the first rows otherwise pay for it)",
    )
    parser.add_argument("--state-dir", type=Path, default=Path("/tmp/dispatch-rl-bench"))
    parser.add_argument(
        "--pin",
        action="store_true",
        help="worker i and its prepare processes on CPU i only (os.sched_setaffinity); the "
        "broker and this process are not pinned",
    )
    parser.add_argument(
        "--worker-cpus",
        type=float,
        default=None,
        metavar="CPUS",
        help="each worker (with its prepare processes) held to this many CPUs by a cgroup CPU "
        "quota of its own, as on a host of that size; the broker and this process are not: "
        "how workers scale when each brings its own CPU (needs write access to the cgroups)",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="per-stage latency of each burst/steady row (streams.stage_trace; the bench "
        "topics stamped by the broker at append)",
    )
    args = parser.parse_args(argv)
    args.quotas = []
    if args.worker_cpus is not None and not 0.01 <= args.worker_cpus <= (os.cpu_count() or 1):
        parser.error(f"--worker-cpus: between 0.01 and {os.cpu_count()} CPUs")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    if args.stages:
        stage_trace.watch_gc()
    skip = set(filter(None, args.skip.split(",")))
    size = f"{args.size[0]}x{args.size[1]}"

    results: list[Figures] = []
    load_before = os.getloadavg()
    with _broker(args.bootstrap) as (bootstrap, broker, broker_pid):
        args.broker_pid = broker_pid
        procs = f"{args.processes} procs" if args.processes else "in-thread"
        default_env = {"DISPATCH_RL_PREPARE_PROCESSES": str(args.processes)}
        thread_env = {"DISPATCH_RL_PREPARE_PROCESSES": "0"}
        Row = tuple[str, int, float | None, int, bool, bool, dict[str, str]]
        plan: list[Row] = []
        if "serial" not in skip:
            plan.append(
                (f"serial burst, 1 worker, {size}", args.serial_days, None, 1, False, False, {})
            )
        if "thread" not in skip and args.processes:
            plan.append(
                (
                    f"in-thread burst, 1 worker, {size}",
                    args.days,
                    None,
                    1,
                    True,
                    False,
                    thread_env,
                )
            )
        plan.append(
            (
                f"pipelined burst, 1 worker, {size}, {procs}",
                args.days,
                None,
                1,
                True,
                False,
                default_env,
            )
        )
        if "fixed" not in skip and args.processes:
            # The pool as before it followed the load: `--processes` children, never more.
            plan.append(
                (
                    f"fixed-pool burst, 1 worker, {size}, {procs}",
                    args.days,
                    None,
                    1,
                    True,
                    False,
                    default_env | {"DISPATCH_RL_PREPARE_PROCESSES_MAX": str(args.processes)},
                )
            )
        if "two" not in skip:
            plan.append(
                (
                    f"pipelined burst, 2 workers, {size}, {procs}",
                    args.days,
                    None,
                    2,
                    True,
                    False,
                    default_env,
                )
            )
        if "store" not in skip:
            plan.append(
                (
                    f"pipelined burst, 1 worker + store, {size}, {procs}",
                    args.days,
                    None,
                    1,
                    True,
                    True,
                    default_env,
                )
            )
            plan.append(
                (
                    f"make-run worker burst (store + dataset), {size}, {procs}",
                    args.days,
                    None,
                    1,
                    True,
                    True,
                    # ... and with its log level (INFO: a few lines per dispatch, to a file here)
                    default_env | {_FULL_RUN: "1", "DISPATCH_RL_LOG_LEVEL": "INFO"},
                )
            )
        if "steady" not in skip:
            for what, env in ((procs, default_env), ("in-thread", thread_env)):
                if env is thread_env and ("thread" in skip or not args.processes):
                    continue
                plan.append(
                    (
                        f"steady {args.rate:g}/s, 1 worker, {size}, {what}",
                        args.steady_days,
                        args.rate,
                        1,
                        True,
                        False,
                        env,
                    )
                )
        if args.warm_days:
            # Not reported: the broker's JIT and page cache warm, as on a broker that has run for
            # days (a fresh JVM spends CPU compiling its hot paths during the first rows).
            asyncio.run(
                _run(
                    bootstrap,
                    "warm-up",
                    args.size,
                    args.warm_days,
                    None,
                    1,
                    True,
                    False,
                    args,
                    default_env,
                )
            )
        for what, n, rate, workers, pipelined, store, env in plan:
            results.append(
                asyncio.run(
                    _run(bootstrap, what, args.size, n, rate, workers, pipelined, store, args, env)
                )
            )
        if args.large:
            runs = [("serial", False, {}), ("in-thread", True, thread_env)]
            # --skip serial / thread leave out those large-day rows too
            runs = [r for r, k in zip(runs, ("serial", "thread"), strict=True) if k not in skip]
            if args.processes:
                runs.append((procs, True, default_env))
            for label, pipelined, env in runs:
                results.append(
                    asyncio.run(_large_day(bootstrap, args.large, label, pipelined, env, args))
                )
    print(
        f"\nstream throughput: broker: {broker} at {bootstrap}; {os.cpu_count()} CPUs; "
        f"{args.partitions} partitions; load average before {load_before[0]:.1f}, "
        f"after {os.getloadavg()[0]:.1f}"
        + (
            f"; each worker held to {args.worker_cpus:g} CPUs by a cgroup quota"
            if args.worker_cpus
            else ""
        )
    )
    print(
        f"{'run':>56} {'days':>6} {'seconds':>8} {'disp/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu ms/disp':>11} {'of it pass':>10} "
        f"{'pass p99':>8} {'procs':>5}"
    )
    for f in results:
        print(
            f"{f.what:>56} {f.days:>6} {f.seconds:>8.2f} {f.per_second:>8.1f} "
            f"{f.p50_ms:>8.1f} {f.p99_ms:>8.1f} {f.max_ms:>8.1f} {f.cpu_ms:>11.2f} "
            f"{f.child_cpu_ms:>10.2f} {f.pass_p99_ms:>8.1f} {f.children:>5}"
        )
    print("beside the workers, cpu ms/disp of the broker and of this bench process:")
    for f in results:
        shares = " + ".join(f"{c:.2f}" for c in f.worker_cpu_ms or [])
        print(
            f"  {f.what}: broker {f.broker_cpu_ms:.2f}, bench {f.bench_cpu_ms:.2f}"
            + (f"; per worker {shares}" if f.worker_cpu_ms and len(f.worker_cpu_ms) > 1 else "")
            + (
                "; quota used up in " + " / ".join(f"{t:.0%}" for t in f.throttled) + " of periods"
                if f.throttled
                else ""
            )
        )
    for f in results:
        if f.stages:
            print(f"\nstages of '{f.what}' (ms; slow 2 %: mean over the slowest 2 % end to end)")
            print(f"{'stage':>80} {'p50':>7} {'p90':>7} {'p99':>7} {'slow 2 %':>8}")
            for name, p50, p90, p99, slow in f.stages:
                print(f"{name:>80} {p50:7.1f} {p90:7.1f} {p99:7.1f} {slow:8.1f}")
            print("garbage collections of 2 ms or more during the row:")
            for line in f.collections or []:
                print(f"  {line}")
    by = {f.what.split(",")[0] + "," + f.what.split(",")[1]: f for f in results if "," in f.what}
    one = by.get("pipelined burst, 1 worker")
    serial = by.get("serial burst, 1 worker")
    thread = by.get("in-thread burst, 1 worker")
    two = by.get("pipelined burst, 2 workers")
    fixed = by.get("fixed-pool burst, 1 worker")
    if one and serial:
        print(
            f"pipelined / serial, the old path (1 worker): "
            f"{one.per_second / serial.per_second:.2f}x"
        )
    if one and thread:
        print(f"pipelined / in-thread (1 worker): {one.per_second / thread.per_second:.2f}x")
    if one and fixed:
        print(
            f"pipelined, pool following the load / fixed pool (1 worker): "
            f"{one.per_second / fixed.per_second:.2f}x"
        )
    if one and two:
        print(f"2 workers / 1 worker (pipelined): {two.per_second / one.per_second:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
