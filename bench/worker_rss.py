"""A worker's idle memory and what it has loaded, against a real broker.

    python bench/worker_rss.py                  # local broker (streams.local_kafka)
    python bench/worker_rss.py --bootstrap host:9092 --idle 30

Starts `dispatch-rl run` (optimizer agent + dataset writer, the shipped DQN serving) in a
fresh process with its own state, dataset and model folders, waits `--idle` seconds without
input, then samples the resident memory of the worker's whole process tree (the worker and
its prepare processes: VmRSS summed, and PSS, which counts shared pages once, from /proc) for
five seconds and reports the largest values, whether torch is mapped into any of them
(/proc/<pid>/maps), and the same figure for a bare `python -c "import torch"` for scale.
Target (issue 7): <= 250 MB idle for the worker with its children (RSS sum).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TARGET_MB = 250.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    ap.add_argument("--idle", type=float, default=20.0, help="seconds before sampling")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with _broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_RL_")}
        env.update(
            DISPATCH_RL_BOOTSTRAP_SERVERS=bootstrap,
            DISPATCH_RL_APP_ID=f"bench-rss-{os.getpid()}",
            DISPATCH_RL_DATASET_GROUP=f"bench-rss-ds-{os.getpid()}",
            DISPATCH_RL_STATE_DIR=f"{tmp}/state",
            DISPATCH_RL_DATASET_DIR=f"{tmp}/dataset",
            DISPATCH_RL_MODEL_DIR=f"{tmp}/models",
            DISPATCH_RL_DATA_DIR=f"{tmp}/data",
            DISPATCH_RL_WEB_PORT="0",
            DISPATCH_RL_LOG_FORMAT="json",
        )
        log = Path(tmp) / "worker.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "run"], env=env, stdout=out, stderr=out
            )
            try:
                time.sleep(args.idle)
                if proc.poll() is not None:
                    print(log.read_text()[-3000:], file=sys.stderr)
                    print(f"error: the worker exited with {proc.returncode}", file=sys.stderr)
                    return 1
                samples = [_sample(proc.pid) for _ in range(5)]
                rss = max(sum(t.rss_mb for t in tree) for tree in samples)
                pss = max(sum(t.pss_mb for t in tree) for tree in samples)
                main_rss = max(tree[0].rss_mb for tree in samples)
                children = max(len(tree) - 1 for tree in samples)
                torch_mapped = any(_maps_torch(t.pid) for t in samples[-1])
                serving = _serving_line(log)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    torch_rss = _torch_baseline()
    result = {
        "worker_idle_rss_mb": round(rss, 1),
        "worker_idle_pss_mb": round(pss, 1),
        "main_process_rss_mb": round(main_rss, 1),
        "prepare_processes": children,
        "target_mb": TARGET_MB,
        "torch_mapped_in_worker": torch_mapped,
        "serving": serving,
        "bare_import_torch_rss_mb": None if torch_rss is None else round(torch_rss, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        verdict = "met" if rss <= TARGET_MB else "MISSED"
        print(
            f"worker idle RSS {rss:.0f} MB with its {children} prepare process(es) (target <= "
            f"{TARGET_MB:.0f} MB: {verdict}; main process {main_rss:.0f} MB; PSS {pss:.0f} MB); "
            f"torch mapped: {'yes' if torch_mapped else 'no'}; serving {serving}; "
            f"for scale, a bare `import torch` process: "
            + ("n/a (torch not installed)" if torch_rss is None else f"{torch_rss:.0f} MB")
        )
    return 0


@dataclass(frozen=True, slots=True)
class _Memory:
    pid: int
    rss_mb: float
    pss_mb: float


def _sample(pid: int) -> list[_Memory]:
    """The worker first, then every descendant (its prepare processes)."""
    time.sleep(1.0)
    return [_memory(p) for p in _tree(pid)]


def _tree(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            out += _tree(int(child))
    return out


def _memory(pid: int) -> _Memory:
    return _Memory(
        pid, _kb(f"/proc/{pid}/status", "VmRSS:"), _kb(f"/proc/{pid}/smaps_rollup", "Pss:")
    )


def _kb(path: str, field: str) -> float:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in {path}")


def _maps_torch(pid: int) -> bool:
    return "torch" in Path(f"/proc/{pid}/maps").read_text()


def _serving_line(log: Path) -> str:
    for line in log.read_text().splitlines():
        if '"model_loaded"' in line or '"serving_greedy"' in line:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            return f"{doc.get('version', 'greedy')} ({doc.get('source', 'greedy')})"
    return "unknown (no model_loaded line)"


def _torch_baseline() -> float | None:
    code = (
        "import torch, pathlib; print([l for l in pathlib.Path('/proc/self/status')"
        ".read_text().splitlines() if l.startswith('VmRSS')][0].split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024.0 if out.returncode == 0 else None


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from streams.local_kafka import LocalKafka

    with LocalKafka() as kafka:
        yield kafka.bootstrap


if __name__ == "__main__":
    sys.exit(main())
