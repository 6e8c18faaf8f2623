"""Failover time: two optimizer workers in one group, one killed with SIGKILL.

    python bench/failover.py [--runs 2] [--bootstrap HOST:PORT]

For each configuration (our defaults, then Faust's defaults as the baseline: 60 s session,
3 s heartbeat, 60 s rebalance), per run: start two `dispatch-rl run --optimizer-only`
subprocesses on fresh topics (3 partitions), wait until the group is stable with both, kill -9
one, publish one small day to each partition at once, and time until each is answered on
`dispatch.optimized`. The largest of the three is the takeover time of the dead worker's
partitions. Prints one line per run and the medians with their ratio.

The broker: `--bootstrap`, else a fresh local one (`streams.local_kafka.LocalKafka`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from optimizer.generate import generate_day  # noqa: E402
from schemas import Optimized  # noqa: E402
from streams import codec  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.topics import ensure_topics  # noqa: E402

CONFIGS = {
    "defaults": {},
    "faust-defaults": {
        "DISPATCH_RL_SESSION_TIMEOUT_SECONDS": "60",
        "DISPATCH_RL_HEARTBEAT_INTERVAL_SECONDS": "3",
        "DISPATCH_RL_REBALANCE_TIMEOUT_SECONDS": "60",
    },
}


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from streams.local_kafka import LocalKafka

    with LocalKafka() as kafka:
        yield kafka.bootstrap


def _env(settings: Settings, data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_RL_")}
    for name in ("bootstrap_servers", "app_id", "topic_input", "topic_optimized"):
        env[f"DISPATCH_RL_{name.upper()}"] = str(getattr(settings, name))
    env["DISPATCH_RL_TOPIC_AUDIT"] = settings.topic_audit
    env["DISPATCH_RL_TOPIC_DEAD_LETTER"] = settings.topic_dead_letter
    env.update(
        DISPATCH_RL_DATA_DIR=str(data_dir),
        DISPATCH_RL_WEB_ENABLED="false",
        DISPATCH_RL_LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


async def _stable_members(settings: Settings) -> int:
    """Members of the agent's group once it is Stable, else -1."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([settings.app_id])
    except Exception:  # the coordinator is not known yet while the first member joins
        return -1
    finally:
        await admin.close()
    group = response.groups[0]
    return len(group[5]) if group[2] == "Stable" else -1


async def _one_run(bootstrap: str, extra: dict[str, str], tmp: Path) -> float:
    u = uuid.uuid4().hex[:8]
    settings = Settings(
        bootstrap_servers=bootstrap,
        app_id=f"failover-{u}",
        topic_input=f"failover.{u}.heuristic_done",
        topic_optimized=f"failover.{u}.optimized",
        topic_audit=f"failover.{u}.swap_audit",
        topic_dead_letter=f"failover.{u}.dead_letter",
        data_dir=tmp / u,
        topic_partitions=3,
    )
    await ensure_topics(settings)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "run", "--optimizer-only"],
            env=_env(settings, tmp / u / f"w{i}", extra),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(tmp / f"{u}-w{i}.log").open("wb"),
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 180
        while await _stable_members(settings) != 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the group never had two stable members")
            await asyncio.sleep(0.5)
        consumer = AIOKafkaConsumer(
            settings.topic_optimized, bootstrap_servers=bootstrap, auto_offset_reset="latest"
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await consumer.start()
        await producer.start()
        try:
            await consumer.getmany(timeout_ms=500)  # position at the end before the kill
            workers[0].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            sent: dict[str, int] = {}
            for partition in range(3):
                day = generate_day(6, 2, seed=1000 + partition)
                sent[day.dispatch_id] = partition
                await producer.send_and_wait(
                    settings.topic_input,
                    codec.encode(day),
                    key=day.dispatch_id.encode(),
                    partition=partition,
                )
            answered: dict[str, float] = {}
            while len(answered) < len(sent) and time.monotonic() - killed < 300:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for r in records:
                        opt = codec.decode(Optimized, r.value)
                        if isinstance(opt, Optimized) and opt.dispatch_id in sent:
                            answered.setdefault(opt.dispatch_id, time.monotonic() - killed)
            if len(answered) < len(sent):
                raise RuntimeError(f"only {len(answered)} of {len(sent)} days answered")
            per_partition = {sent[k]: round(v, 1) for k, v in sorted(answered.items())}
            print(f"    answered after the kill, by partition (s): {per_partition}", flush=True)
            return max(answered.values())
        finally:
            await producer.stop()
            await consumer.stop()
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
                w.wait(60)


async def _main(args: argparse.Namespace) -> None:
    results: dict[str, list[float]] = {}
    with _broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        for name, extra in CONFIGS.items():
            print(f"{name}: {extra or 'session 10 s, heartbeat 2 s, rebalance 60 s'}")
            for run in range(args.runs):
                took = await _one_run(bootstrap, extra, Path(tmp))
                print(f"  run {run + 1}: takeover {took:.1f} s", flush=True)
                results.setdefault(name, []).append(took)
    ours, base = (statistics.median(results[n]) for n in CONFIGS)
    print(
        f"\nmedian takeover: defaults {ours:.1f} s, faust-defaults {base:.1f} s "
        f"({base / ours:.1f}x slower)"
    )
    print(f"load average: {os.getloadavg()[0]:.1f} (2 workers + broker on this host)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs per configuration")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
