"""What each operating-cost term costs: the plan after the cost phase under other weights.

Mean deadhead km, lateness minutes and workload spread at the final plan (same gap in every
row), greedy policy, 10 generated days per size (seeds 1000..):

    python bench/cost_terms.py [--sizes 25x4,40x6] [--days 10]
"""

from __future__ import annotations

import argparse

import numpy as np

from optimizer.generate import generate_day
from optimizer.objective import Objective
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.swap_pass import PassConfig, run_pass

CONFIGS = {
    "no cost phase": PassConfig(cost_phase=False),
    "default": PassConfig(),
    "spread weight 0": PassConfig(objective=Objective(spread_weight=0.0)),
    "late weight 0": PassConfig(objective=Objective(late_weight=0.0)),
    "band 0 (spread always costs)": PassConfig(objective=Objective(spread_band_minutes=0.0)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="25x4,40x6")
    ap.add_argument("--days", type=int, default=10)
    args = ap.parse_args()
    for spec in args.sizes.split(","):
        n, k = (int(x) for x in spec.split("x"))
        days = [Problem.from_event(generate_day(n, k, 1000 + i)) for i in range(args.days)]
        for name, cfg in CONFIGS.items():
            rs = [run_pass(p, a, GreedyPolicy(), cfg) for p, a in days]
            print(
                f"{spec} {name:30s} deadhead {np.mean([r.after.deadhead_km for r in rs]):6.1f} km"
                f"  late {np.mean([r.after.lateness_minutes for r in rs]):5.1f} min"
                f"  spread {np.mean([r.after.value[2] for r in rs]):6.1f} min"
                f"  gap {np.mean([r.after.gap for r in rs]):.2f}"
            )


if __name__ == "__main__":
    main()
