"""Every figure of the fault-injection suite in one table (issue 9 item 2).

Runs the scenarios of `tests/faults/` (the same code the tests assert on) against real worker
subprocesses (`python -m streams.cli run`) and a real broker, and prints one row per figure
with the requirement it is held to:

* kill -9 of the worker mid-stream (2,000 days), then a restarted worker finishes;
* the broker stopped mid-stream and started again on the same data dir (its own durable
  broker, fixed ports);
* two workers on one host, the one holding the dataset directory killed with SIGKILL;
* 10,000 fuzzed inputs (hypothesis mutations and binaries, raw bytes, size edges, absurd
  dates) interleaved with 1,000 valid days;
* corrupt, missing, wrong-shape, NaN and malicious-pickle model files.

The shared broker: `--bootstrap` or `KAFKA_BOOTSTRAP_SERVERS`, else a local one started for
the run (`streams.local_kafka`). Timing figures depend on the machine's load: the last line
prints `uptime`.

    python bench/faults.py                      # all scenarios (~10 min on 2 idle cores)
    python bench/faults.py --only kill9 fuzz    # some of them
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults import scenarios as sc  # noqa: E402
from tests.faults.scenarios import Table  # noqa: E402

SCENARIOS = ("kill9", "broker", "failover", "fuzz", "model")


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from streams.local_kafka import LocalKafka

    with LocalKafka() as kafka:
        yield kafka.bootstrap


async def _kill9(bootstrap: str, base: Path, table: Table, days: int) -> None:
    f = await sc.kill9_scenario(bootstrap, base, days=days, kill_after=min(600, days // 3))
    s = "kill -9 worker"
    table.add(s, "days / handled before the kill", f"{f.days} / {f.handled_at_kill}")
    table.add(s, "lost", len(f.output.lost), "0", not f.output.lost)
    table.add(s, "duplicate Optimized (redelivered)", f.output.duplicates)
    table.add(
        s,
        "duplicates with another event_id/plan",
        len(f.output.inconsistent),
        "0",
        not f.output.inconsistent,
    )
    table.add(
        s,
        "dataset missing / repeated records",
        f"{f.dataset_missing} / {f.dataset_repeated}",
        "0 / 0",
        f.dataset_missing == 0 and f.dataset_repeated == 0,
    )
    table.add(
        s,
        "audit replay OK",
        f"{f.replay_ok}/{f.replay_checked}",
        "all",
        f.replay_ok == f.replay_checked > 0,
    )
    table.add(s, "restart to last Optimized", f"{f.recovery_s:.1f} s")
    table.add(s, "tracebacks in the new worker's log", f.tracebacks, "0", f.tracebacks == 0)


async def _broker_restart(base: Path, table: Table) -> None:
    f = await sc.broker_restart_scenario(base)
    s = "broker stop/start"
    table.add(s, "days / handled before the stop", f"{f.days} / {f.handled_at_stop}")
    table.add(s, "broker down", f"{f.outage_s:.1f} s")
    table.add(s, "lost", len(f.output.lost), "0", not f.output.lost)
    table.add(s, "duplicate Optimized", f.output.duplicates)
    table.add(
        s,
        "duplicates with another event_id/plan",
        len(f.output.inconsistent),
        "0",
        not f.output.inconsistent,
    )
    table.add(
        s,
        "worker alive, tracebacks",
        f"{f.worker_alive}, {f.tracebacks}",
        "True, 0",
        f.worker_alive and f.tracebacks == 0,
    )
    table.add(
        s,
        "dataset missing / repeated records",
        f"{f.dataset_missing} / {f.dataset_repeated}",
        "0 / 0",
        f.dataset_missing == 0 and f.dataset_repeated == 0,
    )
    rate = f.log_lines_in_outage / max(f.outage_s, 1e-9)
    table.add(
        s,
        "worker log during the outage",
        f"{f.log_lines_in_outage} lines ({rate:.0f}/s), {f.log_bytes_in_outage / 1e6:.1f} MB",
    )
    table.add(s, "of which WARNING or worse", f"{f.log_warnings_in_outage} lines")
    table.add(s, "broker back to last Optimized", f"{f.recovery_s:.1f} s")


async def _failover(bootstrap: str, base: Path, table: Table) -> None:
    f = await sc.failover_scenario(bootstrap, base)
    s = "2 workers, 1 killed"
    table.add(s, "days (30/s)", f.days)
    table.add(
        s,
        "takeover of the killed worker's partitions",
        f"{f.takeover_s:.1f} s",
        "<= 15 s",
        bool(f.orphaned) and f.takeover_s <= 15.0,
    )
    per = ", ".join(f"p{p} {t:.1f}" for p, t in f.per_partition_s.items())
    table.add(s, "every partition answering again", f"{f.all_served_s:.1f} s ({per})")
    table.add(s, "session timeout setting", f"{f.session_timeout_s:g} s")
    table.add(s, "lost", len(f.output.lost), "0", not f.output.lost)
    table.add(s, "duplicate Optimized", f.output.duplicates)
    table.add(
        s,
        "survivor took the dataset writer over",
        f.dataset_taken_over,
        "True",
        f.dataset_taken_over,
    )
    table.add(
        s,
        "survivor alive, tracebacks",
        f"{f.survivor_alive}, {f.survivor_tracebacks}",
        "True, 0",
        f.survivor_alive and f.survivor_tracebacks == 0,
    )


async def _fuzz(bootstrap: str, base: Path, table: Table, total: int) -> None:
    f = await sc.fuzz_scenario(bootstrap, base, total=total)
    s = "fuzzed input"
    table.add(s, "inputs", f"{f.inputs} in {f.elapsed_s:.0f} s", ">= 10,000", f.inputs >= 10_000)
    table.add(s, "valid (Optimized expected)", f.expected_optimized)
    table.add(s, "malformed (DeadLetter expected)", f.expected_dead_letter)
    table.add(
        s,
        "valid without Optimized",
        sum(f.optimized_missing.values()),
        "0",
        not f.optimized_missing,
    )
    table.add(
        s,
        "malformed without DeadLetter",
        f"{sum(f.dead_letter_missing.values())} {f.dead_letter_missing or ''}".strip(),
        "0",
        not f.dead_letter_missing,
    )
    table.add(
        s,
        "over the size limit refused at produce",
        f"{f.expected_refused - sum(f.refused_wrongly.values())}/{f.expected_refused}"
        + (f" (wrong: {f.refused_wrongly})" if f.refused_wrongly else ""),
        "all",
        not f.refused_wrongly,
    )
    table.add(
        s,
        "DeadLetter for a valid day",
        f.dead_letters_for_valid,
        "0",
        f.dead_letters_for_valid == 0,
    )
    table.add(
        s,
        "worker alive, tracebacks",
        f"{f.worker_alive}, {f.tracebacks}",
        "True, 0",
        f.worker_alive and f.tracebacks == 0,
    )


async def _model(bootstrap: str, base: Path, table: Table) -> None:
    f = await sc.model_fault_scenario(bootstrap, base)
    s = "model faults"
    for fault, r in f.results.items():
        said = (r["health_says"] or "health says nothing")[:70]
        table.add(
            s,
            f"{fault}: served / health",
            f"{'default' if r['fell_back'] else r['served']} / {said}",
            "default, a reason",
            r["fell_back"] and r["health_says"] is not None,
        )
    table.add(s, "pickle code executed", f.pickle_executed, "False", not f.pickle_executed)
    table.add(
        s,
        "worker alive, tracebacks",
        f"{f.worker_alive}, {f.tracebacks}",
        "True, 0",
        f.worker_alive and f.tracebacks == 0,
    )


def _print(table: Table, seconds: dict[str, float]) -> None:
    head = ("scenario", "figure", "value", "required", "ok")
    rows = [
        (a, b, c, d, "" if ok is None else ("yes" if ok else "NO")) for a, b, c, d, ok in table.rows
    ]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)) + " |")
    print()
    print("scenario wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")


async def _main(args: argparse.Namespace) -> int:
    table = Table()
    seconds: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="dispatch-rl-faults-") as tmp,
        _broker(args.bootstrap) as bootstrap,
    ):
        base = Path(tmp)
        for name in args.only:
            start = time.monotonic()
            where = base / name
            where.mkdir()
            try:
                if name == "kill9":
                    await _kill9(bootstrap, where, table, args.days)
                elif name == "broker":
                    await _broker_restart(where, table)
                elif name == "failover":
                    await _failover(bootstrap, where, table)
                elif name == "fuzz":
                    await _fuzz(bootstrap, where, table, args.fuzz)
                elif name == "model":
                    await _model(bootstrap, where, table)
            except Exception as exc:  # one scenario failing must not hide the others' figures
                table.add(
                    name, "scenario failed", f"{type(exc).__name__}: {str(exc)[:150]}", "", False
                )
            seconds[name] = time.monotonic() - start
    _print(table, seconds)
    return 0 if all(ok is not False for *_, ok in table.rows) else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    p.add_argument("--days", type=int, default=2000, help="days of the kill -9 scenario")
    p.add_argument("--fuzz", type=int, default=10_050, help="fuzzed inputs (valid days included)")
    return asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
