"""Swap-pass latency (greedy policy) against the exact CP-SAT baseline, on the same days.

For each size: p50/p99 of the greedy pass, the gap it reaches, and in the same run the
exact optimum (CP-SAT, time-limited, hinted with the greedy plan) with its wall time, the
greedy/exact time ratio and how often greedy reached the proven optimum.

    python bench/optimize_latency.py [--days 20] [--exact-limit 20] [--sizes 10x3,50x8,...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from optimizer.exact import solve_min_gap
from optimizer.generate import generate_day
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.swap_pass import PassConfig, run_pass


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10x3,50x8,200x25,500x60")
    ap.add_argument("--days", type=int, default=20, help="days per size (seeds 1000..)")
    ap.add_argument(
        "--exact-days",
        type=int,
        default=None,
        help="days per size given to CP-SAT (default: all; it is slow on big days)",
    )
    ap.add_argument("--exact-limit", type=float, default=20.0, help="CP-SAT seconds per day")
    ap.add_argument(
        "--no-hint",
        action="store_true",
        help="solve exact from the upstream plan only (no greedy hint)",
    )
    args = ap.parse_args()
    config = PassConfig()
    policy = GreedyPolicy()
    print(f"pass config: {config}")
    header = (
        f"{'size':>8} {'days':>4} {'gap in':>7} {'greedy':>7} {'exact':>6} {'proven':>6} "
        f"{'at opt':>6} {'p50 ms':>8} {'p99 ms':>8} {'exact p50 s':>11} "
        f"{'exact/greedy':>12}"
    )
    print(header)
    for spec in args.sizes.split(","):
        n, k = (int(x) for x in spec.split("x"))
        times: list[float] = []
        exact_times: list[float] = []
        gaps_in: list[int] = []
        gaps_out: list[int] = []
        exact_gaps: list[int] = []
        proven = at_opt = exact_runs = 0
        for i in range(args.days):
            problem, upstream = Problem.from_event(generate_day(n, k, 1000 + i))
            t = time.perf_counter()
            result = run_pass(problem, upstream, policy, config)
            times.append(time.perf_counter() - t)
            gaps_in.append(result.before.gap)
            gaps_out.append(result.after.gap)
            if args.exact_days is not None and i >= args.exact_days:
                continue
            exact_runs += 1
            hint = None if args.no_hint else result.assignment
            ex = solve_min_gap(problem, upstream, time_limit_s=args.exact_limit, hint=hint)
            exact_times.append(ex.wall_s)
            if ex.gap is not None:
                exact_gaps.append(ex.gap)
            if ex.proven_optimal:
                proven += 1
                at_opt += int(result.after.gap == ex.gap)
        p50 = _pct(times, 50) * 1000
        ex50 = statistics.median(exact_times) if exact_times else float("nan")
        print(
            f"{spec:>8} {args.days:>4} {statistics.mean(gaps_in):>7.2f} "
            f"{statistics.mean(gaps_out):>7.2f} "
            f"{(statistics.mean(exact_gaps) if exact_gaps else float('nan')):>6.2f} "
            f"{proven:>3}/{exact_runs:<2} {at_opt:>3}/{proven:<2} {p50:>8.2f} "
            f"{_pct(times, 99) * 1000:>8.2f} {ex50:>11.3f} {ex50 * 1000 / p50:>11.1f}x"
        )


if __name__ == "__main__":
    main()
