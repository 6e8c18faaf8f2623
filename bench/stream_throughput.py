"""Stream throughput and end-to-end latency of one optimizer worker on a real broker.

For each day size (10 bookings x 3 drivers, 100 x 12 by default):

1. start one worker (`python -m streams.cli run --optimizer-only`, its own process, greedy
   policy, logs at WARNING) on fresh topics and wait until it answers a warm-up day;
2. **burst**: publish N days as fast as the producer goes and read `dispatch.optimized` until
   all N are visible; sustained dispatches/s = N / (last output visible - first produce), and the
   latency of each dispatch = output visible - its produce time (queueing included: in a burst
   the last day waits for all the others);
3. **paced**: publish M more days at half the measured throughput, so latency shows the
   per-dispatch cost without queueing.

The broker: `--bootstrap` or `KAFKA_BOOTSTRAP_SERVERS`, else a local one (`streams.local_kafka`)
started for the run and stopped after.

    python bench/stream_throughput.py                 # both sizes, default counts
    python bench/stream_throughput.py --days 200 --sizes 10x3
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from optimizer.generate import generate_days  # noqa: E402
from schemas import HeuristicDone  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import MAX_MESSAGE_BYTES, client_options, ensure_topics  # noqa: E402


@dataclass
class Figures:
    size: str
    mode: str
    days: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[tuple[str, str]]:
    if bootstrap:
        yield bootstrap, "external"
        return
    from streams.local_kafka import KAFKA_VERSION, LocalKafka

    with LocalKafka() as kafka:
        yield kafka.bootstrap, f"local launcher, Apache Kafka {KAFKA_VERSION}"


def _settings(bootstrap: str, tag: str) -> Settings:
    return Settings(
        bootstrap_servers=bootstrap,
        app_id=f"bench-{tag}",
        dataset_group=f"bench-dataset-{tag}",
        topic_input=f"bench.{tag}.heuristic_done",
        topic_optimized=f"bench.{tag}.optimized",
        topic_audit=f"bench.{tag}.swap_audit",
        topic_dead_letter=f"bench.{tag}.dead_letter",
        web_enabled=False,
    )


def _worker_env(settings: Settings, state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DISPATCH_RL_BOOTSTRAP_SERVERS": settings.bootstrap_servers or "",
            "DISPATCH_RL_APP_ID": settings.app_id,
            "DISPATCH_RL_TOPIC_INPUT": settings.topic_input,
            "DISPATCH_RL_TOPIC_OPTIMIZED": settings.topic_optimized,
            "DISPATCH_RL_TOPIC_AUDIT": settings.topic_audit,
            "DISPATCH_RL_TOPIC_DEAD_LETTER": settings.topic_dead_letter,
            "DISPATCH_RL_WEB_ENABLED": "false",
            "DISPATCH_RL_LOG_LEVEL": "WARNING",
            "DISPATCH_RL_LOG_FORMAT": "json",
            "DISPATCH_RL_STATE_DIR": str(state_dir),
            "DISPATCH_RL_MODEL_DIR": str(state_dir / "no-models"),
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


class Harness:
    """A producer and a consumer of the optimized topic, in the measuring process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.visible: dict[bytes, float] = {}
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
            for records in batches.values():
                for r in records:
                    if r.key not in self.visible and self.model_version == "?":
                        self.model_version = json.loads(r.value)["model_version"]
                    self.visible.setdefault(r.key, now)

    async def send(self, days: list[tuple[bytes, bytes]], rate: float | None) -> dict[bytes, float]:
        sent: dict[bytes, float] = {}
        futures = []
        start = time.perf_counter()
        for i, (key, value) in enumerate(days):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent[key] = time.perf_counter()
            futures.append(await self.producer.send(self.settings.topic_input, value, key=key))
        await asyncio.gather(*futures)
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
    size: str, mode: str, sent: dict[bytes, float], visible: dict[bytes, float]
) -> Figures:
    latencies = [(visible[k] - t) * 1000 for k, t in sent.items()]
    seconds = max(visible[k] for k in sent) - min(sent.values())
    return Figures(
        size,
        mode,
        len(sent),
        seconds,
        len(sent) / seconds,
        statistics.median(latencies),
        _pct(latencies, 0.99),
        max(latencies),
    )


async def _bench_size(
    bootstrap: str, n_bookings: int, n_drivers: int, days: int, paced_days: int, state_dir: Path
) -> list[Figures]:
    size = f"{n_bookings}x{n_drivers}"
    tag = f"{size}-{uuid.uuid4().hex[:8]}"
    settings = _settings(bootstrap, tag)
    await ensure_topics(settings)
    pool = generate_days(min(days, 50), [(n_bookings, n_drivers)], seed=n_bookings)
    burst = _encode([pool[i % len(pool)] for i in range(days)], f"burst-{tag}")
    paced = _encode([pool[i % len(pool)] for i in range(paced_days)], f"paced-{tag}")
    warm = _encode(pool[:3], f"warm-{tag}")

    worker = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "run", "--optimizer-only"],
        env=_worker_env(settings, state_dir / tag),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(state_dir / f"{tag}.log").open("wb"),
    )
    try:
        async with Harness(settings) as h:
            await h.send(warm, None)
            await h.wait_for({k for k, _ in warm}, timeout=120)
            sent = await h.send(burst, None)
            await h.wait_for(set(sent), timeout=600)
            burst_fig = _figures(size, "burst", sent, h.visible)
            sent = await h.send(paced, burst_fig.per_second / 2)
            await h.wait_for(set(sent), timeout=600)
            paced_fig = _figures(size, f"paced @{burst_fig.per_second / 2:.0f}/s", sent, h.visible)
            print(f"{size}: served by model {h.model_version}", file=sys.stderr)
        return [burst_fig, paced_fig]
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--sizes", default="10x3,100x12", help="comma-separated BOOKINGSxDRIVERS")
    parser.add_argument(
        "--days",
        type=int,
        default=None,
        help="days per burst (default: 1000 for 10x3-sized, 200 otherwise)",
    )
    parser.add_argument("--paced-days", type=int, default=50)
    parser.add_argument("--state-dir", type=Path, default=Path("/tmp/dispatch-rl-bench"))
    args = parser.parse_args(argv)
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    args.state_dir.mkdir(parents=True, exist_ok=True)

    results: list[Figures] = []
    with _broker(args.bootstrap) as (bootstrap, broker):
        for n, k in sizes:
            days = args.days or (1000 if n <= 20 else 200)
            results += asyncio.run(
                _bench_size(bootstrap, n, k, days, args.paced_days, args.state_dir)
            )
    print(
        f"\nstream throughput: one worker (default policy provider), broker: {broker} "
        f"at {bootstrap}; {os.cpu_count()} CPUs"
    )
    print(
        f"{'size':>7} {'mode':>16} {'days':>6} {'seconds':>8} {'disp/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for f in results:
        print(
            f"{f.size:>7} {f.mode:>16} {f.days:>6} {f.seconds:>8.2f} {f.per_second:>8.1f} "
            f"{f.p50_ms:>8.1f} {f.p99_ms:>8.1f} {f.max_ms:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
