"""The pass on days nobody designed it for: Solomon's VRPTW instances as patient-transport days.

    python bench/unlike_days.py                       # 6 instances x 5 classes x 2 seeds
    python bench/unlike_days.py --seeds 1 2 3 --classes 10x3 100x13 --json

Our generators and Cordeau's instances are what the pass was built and tuned on; these days
come from another problem (`optimizer.solomon`: clustered, random and mixed geography, tight
and loose windows, a hospital at the depot, rides to and from it). For each size class and
policy (shipped DQN, greedy, random order: the same search), the same table as
`bench/heldout.py`: proven-optimum rate of the ride-count gap, gap excess, deadhead excess over
the exact minimum at the optimal gap, lateness, latency, checks, budget stops. Then every
published `Optimized` (the full dispatch path, as the worker runs it) is checked by
`bench/route_check.py`, written from the event contract alone: feasibility, per-booking
lateness, locked bookings, published times, ride-count gap. The last line counts the outputs
that break anything (must be 0).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from heldout import report  # sibling script (bench/ is on sys.path)
from route_check import check

from optimizer.dispatch import DispatchConfig, optimize_event
from optimizer.dqn.days import day_from_event
from optimizer.evaluate import evaluate_days, summarize
from optimizer.evaluate_cli import RandomPolicy
from optimizer.heldout import SIZE_CLASSES
from optimizer.policy import GreedyPolicy
from optimizer.registry import DEFAULT_MODEL_DIR, load_model
from optimizer.solomon import INSTANCES, solomon_day
from optimizer.swap_pass import MovePolicy


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--classes", nargs="+", help="NxK (default: the target classes)")
    ap.add_argument("--instances", nargs="+", default=list(INSTANCES))
    ap.add_argument("--exact-time-limit", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    classes = SIZE_CLASSES
    if args.classes:
        classes = tuple((int(n), int(k)) for n, k in (c.split("x") for c in args.classes))

    model = load_model(DEFAULT_MODEL_DIR, check_quality=False)
    policies: dict[str, MovePolicy] = {
        "dqn": model.policy(),
        "greedy": GreedyPolicy(),
        "random": RandomPolicy(0),
    }
    dispatch = DispatchConfig()
    started = time.perf_counter()
    events = [
        solomon_day(name, n, k, seed)
        for n, k in classes
        for name in args.instances
        for seed in args.seeds
    ]
    days = [day_from_event(e, "solomon", e.dispatch_id, rules=dispatch.rules) for e in events]
    rows = evaluate_days(
        days, policies, dispatch.pass_config, exact_time_limit_s=args.exact_time_limit
    )
    rows = [replace(r, group=f"solomon {r.bookings}x{r.drivers}") for r in rows]
    summary = summarize(rows, list(policies))

    broken: list[str] = []
    for event in events:
        for label, policy in policies.items():
            out = optimize_event(event, policy, dispatch)
            broken += [
                f"{event.dispatch_id} {label}: {p}"
                for p in check(
                    event,
                    out.optimized,
                    tolerance=dispatch.rules.late_tolerance_minutes,
                    high_priority=dispatch.rules.high_priority,
                )
            ]
    summary.update(
        model_version=model.version,
        days=len(days),
        independent_check={"outputs": len(events) * len(policies), "broken": broken},
    )
    what = f"{len(days)} Solomon days (instances {' '.join(args.instances)}; seeds {args.seeds})"
    report(summary, list(policies), started, what, as_json=args.json)
    if args.json:
        return 0
    print(
        f"independent check (bench/route_check.py): {len(events) * len(policies)} published "
        f"outputs, {len(broken)} broken promises"
    )
    for line in broken[:20]:
        print("  " + line)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
