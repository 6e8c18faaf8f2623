"""Log lines a worker writes while its broker is down (the stdlib rate-limit filter at work).

Starts a local broker and a worker in this process (JSON logs to a file), stops the broker for
`--seconds`, starts it again on the same data dir and port, and prints how many lines the
outage produced and the first of them.

    python bench/log_outage.py --seconds 25
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimizer.policy import GreedyPolicy  # noqa: E402
from optimizer.serving import StaticPolicyProvider  # noqa: E402
from streams.local_kafka import LocalKafka  # noqa: E402
from streams.local_kafka.process import free_ports  # noqa: E402
from streams.logs import configure_logging  # noqa: E402
from streams.settings import Settings  # noqa: E402
from streams.worker import running_worker  # noqa: E402


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


async def _run(work: Path, seconds: float, out: object) -> tuple[int, list[str]]:
    port, cport = free_ports(2)
    log_path = work / "worker.log"
    kafka = LocalKafka(work / "kafka", port=port, controller_port=cport, ephemeral=False).start()
    settings = Settings(
        bootstrap_servers=kafka.bootstrap,
        app_id="outage",
        dataset_group="outage-dataset",
        topic_input="outage.in",
        topic_optimized="outage.out",
        topic_audit="outage.audit",
        topic_dead_letter="outage.dlq",
        web_enabled=False,
        store_enabled=False,
        data_dir=work / "data",
    )
    provider = StaticPolicyProvider(GreedyPolicy())
    try:
        async with running_worker(settings, dataset=False, provider=provider):
            await asyncio.sleep(5)
            before = len(_lines(log_path))
            kafka.stop()
            await asyncio.sleep(seconds)
            during = _lines(log_path)[before:]
            kafka = LocalKafka(
                work / "kafka", port=port, controller_port=cport, ephemeral=False
            ).start()
            await asyncio.sleep(10)
    finally:
        kafka.stop()
    return len(during), during


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/dispatch-rl-log-outage"))
    args = parser.parse_args()
    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    stdout = sys.stdout
    sys.stderr = (args.work_dir / "worker.log").open("w", buffering=1)
    configure_logging("json", "INFO")
    n, lines = asyncio.run(_run(args.work_dir, args.seconds, stdout))
    print(f"broker down {args.seconds:g} s: {n} log lines ({n / args.seconds:.1f}/s)", file=stdout)
    for line in lines[:20]:
        print(line[:200], file=stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
