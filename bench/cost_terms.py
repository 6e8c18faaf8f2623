"""What each operating-cost term costs in km: the pass's final plan under other settings.

Mean deadhead km, lateness minutes and workload spread at the final plan, greedy policy, the
same days for every row (seeds 1000..), and the deadhead against the default row: a term whose
weight is set to 0 shows how many km the default spends on it (negative: the default pays km
for it), `no km re-plans` / `no cost phase` what those parts save.

    python bench/cost_terms.py [--sizes 25x4,40x6] [--days 10] [--kind generated|patient]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from optimizer.generate import generate_day
from optimizer.objective import Objective
from optimizer.patient_transport import PATIENT_RULES, patient_day
from optimizer.policy import GreedyPolicy
from optimizer.problem import IntArray, Problem
from optimizer.swap_pass import PassConfig, run_pass

BASE = PassConfig()
CONFIGS = {
    "default": BASE,
    "no cost phase": replace(BASE, cost_phase=False),
    "no km re-plans": replace(BASE, km_replan_sizes=()),
    "spread weight 0": replace(BASE, objective=Objective(spread_weight=0.0)),
    "late weight 0": replace(BASE, objective=Objective(late_weight=0.0)),
    "spread and late weight 0": replace(
        BASE, objective=Objective(spread_weight=0.0, late_weight=0.0)
    ),
    "band 0 (spread always costs)": replace(BASE, objective=Objective(spread_band_minutes=0.0)),
}


def _days(kind: str, n: int, k: int, count: int) -> list[tuple[Problem, IntArray]]:
    if kind == "patient":
        return [
            Problem.from_event(patient_day(n, k, 1000 + i), rules=PATIENT_RULES)
            for i in range(count)
        ]
    return [Problem.from_event(generate_day(n, k, 1000 + i)) for i in range(count)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="25x4,40x6")
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--kind", choices=("generated", "patient"), default="generated")
    args = ap.parse_args()
    print(f"{args.kind} days, greedy, {args.days} per size (seeds 1000..)")
    for spec in args.sizes.split(","):
        n, k = (int(x) for x in spec.split("x"))
        days = _days(args.kind, n, k, args.days)
        base_km = 0.0
        for name, cfg in CONFIGS.items():
            started = time.process_time()
            rs = [run_pass(p, a, GreedyPolicy(), cfg) for p, a in days]
            ms = 1000 * (time.process_time() - started) / len(days)
            km = float(np.mean([r.after.deadhead_km for r in rs]))
            base_km = base_km or km
            print(
                f"{spec:>7} {name:30s} deadhead {km:6.1f} km ({100 * (km / base_km - 1):+5.1f} %)"
                f"  late {np.mean([r.after.lateness_minutes for r in rs]):5.1f} min"
                f"  spread {np.mean([r.after.value[2] for r in rs]):6.1f} min"
                f"  gap {np.mean([r.after.gap for r in rs]):.2f}"
                f"  {ms:6.1f} ms CPU/pass",
                flush=True,
            )


if __name__ == "__main__":
    main()
