"""The held-out table by size class: DQN / greedy (/ random) against the exact reference.

    python bench/heldout.py                       # shipped default model, 10 days per class
    python bench/heldout.py --per-class 20 --large --ablation --json
    python bench/heldout.py --model var/models/versions/<v>
    python bench/heldout.py --kinds generated patient --generated-base 8000000 \
        --patient-base 8100000            # fresh days: other seeds of the same generators

For each group (source and size class; `optimizer.heldout`) and each policy, with the
operator's default pass config: proven-optimum rate, mean gap excess over the proven optimum,
deadhead excess over the exact minimum deadhead at the optimal gap (%, on the days the policy
reached that gap; where the minimum is not proven within the time limit, an upper bound on
it from the lower bound on that minimum (CP-SAT's or the Lagrangian one of
`optimizer.deadhead_bound`) and a lower bound from the best plan known at that gap), lateness
minutes per day, p50 / p99 pass latency, mean
validator checks and accepted steps per pass, and how often the budget stopped the pass. The
exact columns: days proven, CP-SAT p50 / p99. Then the target check: optimum rate >= 99 % in
every class up to 100x13 and never below greedy's, and deadhead excess <= 10 %. Days and
seeds are those `dispatch-rl evaluate` uses; the policies run interleaved per day so machine
load hits them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optimizer.evaluate import DayResult, evaluate_days, rows_as_dicts, summarize
from optimizer.evaluate_cli import RandomPolicy
from optimizer.heldout import (
    GENERATED_SEED_BASE,
    LARGE_CLASSES,
    PATIENT_SEED_BASE,
    SIZE_CLASSES,
    HeldOutSpec,
    heldout_days,
)
from optimizer.policy import GreedyPolicy
from optimizer.registry import DEFAULT_MODEL_DIR, load_model
from optimizer.swap_pass import MovePolicy, PassConfig

TARGET_RATE = 0.99
DEADHEAD_TARGET_PCT = 10.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="a model directory")
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--kinds", nargs="+", default=["generated", "patient", "cordeau"])
    ap.add_argument("--large", action="store_true", help="add the 150x18 and 300x40 classes")
    ap.add_argument("--ablation", action="store_true", help="add random ranking, same search")
    ap.add_argument("--exact-time-limit", type=float, default=10.0)
    ap.add_argument("--exact-workers", type=int, default=2, help="CP-SAT workers per solve")
    ap.add_argument("--rows", type=Path, help="append each day's result to this JSON-lines file")
    ap.add_argument(
        "--late-capped",
        action="store_true",
        help="also the same-punctuality reference (plans no later in total than the pass's)",
    )
    ap.add_argument(
        "--generated-base", type=int, default=GENERATED_SEED_BASE, help="first generated seed"
    )
    ap.add_argument(
        "--patient-base", type=int, default=PATIENT_SEED_BASE, help="first patient seed"
    )
    ap.add_argument("--classes", nargs="+", help="size classes NxK (default: the target classes)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    model = load_model(args.model, check_quality=False)
    policies: dict[str, MovePolicy] = {"dqn": model.policy(), "greedy": GreedyPolicy()}
    if args.ablation:
        policies["random"] = RandomPolicy(0)
    config = PassConfig()
    classes = SIZE_CLASSES
    if args.classes:
        classes = tuple((int(n), int(k)) for n, k in (c.split("x") for c in args.classes))
    classes += LARGE_CLASSES if args.large else ()
    spec = HeldOutSpec(
        per_class=args.per_class,
        classes=classes,
        kinds=tuple(args.kinds),
        generated_base=args.generated_base,
        patient_base=args.patient_base,
    )
    started = time.perf_counter()
    days = heldout_days(spec)
    rows = evaluate_days(
        days,
        policies,
        config,
        exact_time_limit_s=args.exact_time_limit,
        exact_workers=args.exact_workers,
        late_capped=args.late_capped,
        on_day=_appender(args.rows) if args.rows else None,
    )
    summary = summarize(rows, list(policies))
    summary.update(model_version=model.version, held_out=spec.describe())
    report(summary, list(policies), started, f"{len(rows)} held-out days ({spec.describe()})",
           as_json=args.json)  # fmt: skip
    return 0


def _appender(path: Path) -> Callable[[DayResult], None]:
    """Each finished day as one JSON line (a long run's days survive an interruption)."""

    def append(row: DayResult) -> None:
        with path.open("a") as f:
            f.write(json.dumps(rows_as_dicts([row])[0]) + "\n")

    return append


def report(
    summary: dict[str, Any], labels: list[str], started: float, what: str, *, as_json: bool
) -> None:
    """Add wall time and load to `summary`, then print it as JSON, or as the header line
    (model, `what`, wall, load), the table and the target check (also `bench/unlike_days.py`)."""
    wall, load = time.perf_counter() - started, os.getloadavg()
    summary.update(wall_s=round(wall, 1), load_average=[round(x, 2) for x in load])
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"model {summary['model_version']}; {what}; {wall:.0f} s wall, load average "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} CPUs "
        "(timings are noisy on a shared machine)"
    )
    print()
    print(table(summary, labels))
    print()
    for line in target_check(summary, labels):
        print(line)


def table(summary: dict[str, Any], labels: list[str]) -> str:
    head = (
        "| group | days | policy | optimum rate | mean gap excess | deadhead excess % | "
        "deadhead excess >= % | deadhead excess <= % | same lateness: excess >= % | <= % | "
        "lateness min | p50 ms | p99 ms | checks | steps | budget stops |"
    )
    lines = [
        head,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group, block in [("all", summary["methods"]), *summary["groups"].items()]:
        ex = block["exact"]
        for lb in labels:
            m = block[lb]
            lines.append(
                f"| {group} | {m['days']} | {lb} | {_pc(m['optimum_rate'])} | "
                f"{_f(m['mean_gap_excess'])} | {_f(m['deadhead_excess_pct'])} | "
                f"{_f(m['deadhead_excess_low_pct'])} | {_f(m['deadhead_excess_bound_pct'])} | "
                f"{_f(m.get('capped_excess_low_pct'))} | {_f(m.get('capped_excess_bound_pct'))} | "
                f"{_f(m['lateness_minutes'])} | "
                f"{_f(m['latency_ms_p50'])} | "
                f"{_f(m['latency_ms_p99'])} | {_f(m['mean_checks'])} | {_f(m['mean_steps'])} | "
                f"{m['budget_stops']} |"
            )
        lines.append(
            f"| {group} | {ex['days']} | exact | {ex['proven']} proven | 0 | "
            f"0 ({ex['min_deadhead_known']} known) | | ({ex['min_deadhead_bounded']} bounded) | "
            "| | | "
            f"{_f(ex['latency_ms_p50'])} | "
            f"{_f(ex['latency_ms_p99'])} | | | |"
        )
    return "\n".join(lines)


def target_check(summary: dict[str, Any], labels: list[str]) -> list[str]:
    out = []
    targets = {f"{n}x{k}" for n, k in SIZE_CLASSES}
    for group, block in summary["groups"].items():
        size = group.partition(" ")[2]
        if size not in targets:
            continue
        dqn, greedy = block["dqn"]["optimum_rate"], block["greedy"]["optimum_rate"]
        if dqn is None:
            continue
        ok = dqn >= TARGET_RATE and (greedy is None or dqn >= greedy)
        out.append(
            f"{'met   ' if ok else 'MISSED'} {group}: dqn {_pc(dqn)} (target >= 99 %, "
            f"greedy {_pc(greedy)})"
        )
        for label in ("dqn", "greedy"):
            if label in block:
                out += _deadhead_verdicts(group, label, block[label])
    return out


def _deadhead_verdicts(group: str, label: str, m: dict[str, Any]) -> list[str]:
    """The deadhead target against each reference computed: `met` when the upper bound on
    the mean excess is within the target, `MISSED` when the lower one is above it (or the
    minimum is proven on every day), else `open`."""
    out = []
    refs = (
        ("deadhead_excess", "deadhead", "deadhead-only"),
        ("capped_excess", "capped", "same lateness"),
    )
    for key, days, name in refs:
        bound, low = m.get(f"{key}_bound_pct"), m.get(f"{key}_low_pct")
        known = m.get(f"{key}_pct")
        if bound is None:
            continue
        whole = m[f"{days}_compared_days"] == m[f"{days}_bounded_days"]
        missed = (whole and known is not None and known > DEADHEAD_TARGET_PCT) or (
            low is not None and low > DEADHEAD_TARGET_PCT
        )
        verdict = "met   " if bound <= DEADHEAD_TARGET_PCT else ("MISSED" if missed else "open  ")
        out.append(
            f"{verdict} {group}: {label} deadhead excess ({name} reference) <= {_f(bound)} % over "
            f"{m[f'{days}_bounded_days']} days with a bound, >= {_f(low)} % against the best "
            f"plans known ({_f(known)} % over the {m[f'{days}_compared_days']} with a proven "
            f"minimum; target <= {DEADHEAD_TARGET_PCT:g} %)"
        )
    return out


def _f(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _pc(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


if __name__ == "__main__":
    sys.exit(main())
