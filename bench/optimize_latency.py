"""The swap pass by size class: optimum rate, deadhead excess, stop reasons and latency.

For each size and policy (greedy, and the shipped DQN when torch is installed), on the same
generated days: how often the pass reaches the proven optimal ride-count gap (CP-SAT,
time-limited, hinted with the pass's plan), the mean deadhead excess of its final plan over
the exact minimum deadhead at that same gap (`solve_lexicographic`, on the days where the
pass reached the optimum and CP-SAT proved the minimum; `(n)` says on how many) and, over all
days at the optimum, against CP-SAT's lower bound on that minimum (`<= bnd`: the true excess is
at most this), the input plan's excess (`dh in`), the final plans' mean deadhead (`dh km`),
why the passes stopped, how many validator checks they made, and p50/p99 pass latency (wall
clock, and CPU time of this process, which a machine shared with other work inflates less).

    python bench/optimize_latency.py                       # 20 days per size, all sizes
    python bench/optimize_latency.py --sizes 10x3,300x40 --no-exact --policies greedy,dqn
    python bench/optimize_latency.py --late-tolerance 0 --locked 0.1 --urgent 0.3
    python bench/optimize_latency.py --kind patient --sizes 10x3,100x13,300x40 --no-exact
    python bench/optimize_latency.py --sizes 10x3,300x40 --no-exact --baseline-tree /tmp/base

`--baseline-tree DIR` first runs this script (same days, sizes and policies, no exact) on the
optimizer found in DIR (e.g. `git archive main | tar -x -C DIR`), then prints after each row
how many times faster this checkout is (mean CPU, p50 and p99 wall); `--save` / `--baseline`
do the same through a file.

Targets (issue 7): p99 <= 20 ms at 10x3 and <= 300 ms at 300x40 (2 CPU cores); the budget is
never the stop reason; deadhead excess <= +10 % at every size up to 100x13.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

from optimizer.exact import solve_lexicographic, solve_min_gap
from optimizer.generate import DayShape, generate_day
from optimizer.patient_transport import PATIENT_RULES, patient_day
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem, Rules
from optimizer.swap_pass import MovePolicy, PassConfig, PassResult, run_pass

SIZES = "10x3,25x4,40x6,60x8,100x13,300x40"
TARGETS_MS = {(10, 3): 20.0, (300, 40): 300.0}


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _policies(names: list[str]) -> dict[str, MovePolicy]:
    out: dict[str, MovePolicy] = {}
    for name in names:
        if name == "greedy":
            out[name] = GreedyPolicy()
        elif name == "dqn":
            from optimizer.registry import DEFAULT_MODEL_DIR, load_model  # numpy serving

            out[name] = load_model(DEFAULT_MODEL_DIR).policy()
        elif name == "random":
            out[name] = _RandomPolicy()
        else:
            raise SystemExit(f"unknown policy {name!r}")
    return out


class _RandomPolicy:
    """Random order (seeded per call from the plan, so runs are reproducible)."""

    version = "random"

    def score(self, state: object, candidates: object) -> np.ndarray:
        n = len(candidates)  # type: ignore[arg-type]
        seed = int(getattr(state, "assignment").sum()) + n  # noqa: B009
        return np.random.default_rng(seed).random(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=SIZES)
    ap.add_argument("--days", type=int, default=20, help="days per size (seeds 1000..)")
    ap.add_argument("--policies", default="greedy,dqn", help="greedy, dqn, random")
    ap.add_argument("--exact-limit", type=float, default=20.0, help="CP-SAT seconds per solve")
    ap.add_argument("--no-exact", action="store_true", help="latency and stop reasons only")
    ap.add_argument(
        "--exact-max-bookings",
        type=int,
        default=100,
        help="days above this size get the min-gap proof but no deadhead reference",
    )
    ap.add_argument(
        "--kind",
        choices=("generated", "patient"),
        default="generated",
        help="day generator: ours, or the patient-transport one (its own rules: tolerance 0; "
        "--late-tolerance, --locked and --urgent then do not apply)",
    )
    ap.add_argument("--late-tolerance", type=float, default=10.0)
    ap.add_argument("--locked", type=float, default=0.03, help="share of locked bookings")
    ap.add_argument("--urgent", type=float, default=0.10, help="share of priority bookings")
    ap.add_argument("--lookahead-depth", type=int, default=None)
    ap.add_argument("--save", help="write each row's latency figures to this JSON file")
    ap.add_argument("--baseline", help="a --save file: print the speed-up against it per row")
    ap.add_argument(
        "--baseline-tree", help="run the same days on the optimizer in this directory first"
    )
    args = ap.parse_args()
    if args.baseline_tree:
        args.baseline = _run_baseline(args)
    baseline: dict[str, dict[str, float]] = {}
    if args.baseline:
        with open(args.baseline) as f:
            baseline = json.load(f)
    saved: dict[str, dict[str, float]] = {}

    config = PassConfig()
    if args.lookahead_depth is not None:
        config = replace(config, lookahead_depth=args.lookahead_depth)
    rules = Rules(late_tolerance_minutes=args.late_tolerance)
    shape = DayShape(locked=args.locked, high_priority=args.urgent)
    policies = _policies(args.policies.split(","))
    _warm_up(policies, config)
    print(f"pass config: {config}")
    if args.kind == "patient":
        print(f"patient-transport days (seeds 1000..), rules: {PATIENT_RULES}")
    else:
        print(f"rules: {rules}; day shape: locked {args.locked}, urgent {args.urgent}")
    print(
        f"{'size':>7} {'policy':>10} {'days':>4} {'gap in':>6} {'gap':>5} {'exact':>5} "
        f"{'at opt':>7} {'dh excess':>9} {'(n)':>4} {'<= bnd':>7} {'dh in':>6} {'dh km':>7} "
        f"{'late min':>8} "
        f"{'checks':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7}{'':5} {'cpu p50':>7} {'cpu p99':>7} {'cpu avg':>7}"
        "  stop reasons"
    )
    for spec in args.sizes.split(","):
        n, k = (int(x) for x in spec.split("x"))
        if args.kind == "patient":
            days = [
                Problem.from_event(patient_day(n, k, 1000 + i), rules=PATIENT_RULES)
                for i in range(args.days)
            ]
        else:
            days = [
                Problem.from_event(generate_day(n, k, 1000 + i, shape=shape), rules=rules)
                for i in range(args.days)
            ]
        results: dict[str, list[PassResult]] = {name: [] for name in policies}
        times: dict[str, list[float]] = {name: [] for name in policies}
        cpu: dict[str, list[float]] = {name: [] for name in policies}
        for problem, upstream in days:
            for name, policy in policies.items():  # interleaved: load hits all alike
                t, c = time.perf_counter(), time.process_time()
                r = run_pass(problem, upstream, policy, config)
                times[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
                results[name].append(r)
        exact_gap: list[int | None] = []
        min_deadhead: dict[int, float] = {}  # day -> proven minimum deadhead at the optimum
        km_bound: dict[int, float] = {}  # day -> CP-SAT's lower bound on it (proven or not)
        if not args.no_exact:
            for i, (problem, upstream) in enumerate(days):
                hint = min(
                    (rs[i] for rs in results.values()), key=lambda r: r.after.value
                ).assignment
                ex = solve_min_gap(problem, upstream, time_limit_s=args.exact_limit, hint=hint)
                exact_gap.append(ex.gap if ex.proven_optimal else None)
                if ex.proven_optimal and ex.gap is not None and n <= args.exact_max_bookings:
                    lex = solve_lexicographic(
                        problem, upstream, gap=ex.gap, time_limit_s=args.exact_limit, hint=hint
                    )
                    if lex.proven_optimal and lex.deadhead_km is not None:
                        min_deadhead[i] = lex.deadhead_km
                    if lex.lower_bound_km > 0:
                        km_bound[i] = lex.lower_bound_km
        for name, rs in results.items():
            stops = collections.Counter(r.stop_reason for r in rs)
            proven = [i for i, g in enumerate(exact_gap) if g is not None]
            at_opt = [i for i in proven if rs[i].after.gap == exact_gap[i]]
            excess = [
                rs[i].after.deadhead_km / min_deadhead[i] - 1.0
                for i in at_opt
                if i in min_deadhead and min_deadhead[i] > 0
            ]
            # Against CP-SAT's lower bound: the true excess is at most this (all days at opt).
            excess_hi = [
                rs[i].after.deadhead_km / km_bound[i] - 1.0 for i in at_opt if i in km_bound
            ]
            excess_in = [
                rs[i].before.deadhead_km / min_deadhead[i] - 1.0
                for i in at_opt
                if i in min_deadhead and min_deadhead[i] > 0
            ]
            ms = [t * 1000 for t in times[name]]
            cpu_ms = [t * 1000 for t in cpu[name]]
            p99 = _pct(ms, 99)
            target = TARGETS_MS.get((n, k))
            flag = "" if target is None else (" ok" if p99 <= target else " OVER")
            print(
                f"{spec:>7} {name:>10} {len(rs):>4} "
                f"{statistics.mean(r.before.gap for r in rs):>6.2f} "
                f"{statistics.mean(r.after.gap for r in rs):>5.2f} "
                f"{(statistics.mean(g for g in exact_gap if g is not None) if proven else float('nan')):>5.2f} "  # noqa: E501
                f"{len(at_opt):>3}/{len(proven):<3} "
                f"{(100 * statistics.mean(excess) if excess else float('nan')):>8.1f}% "
                f"({len(excess):>2}) "
                f"{(100 * statistics.mean(excess_hi) if excess_hi else float('nan')):>6.1f}% "
                f"{(100 * statistics.mean(excess_in) if excess_in else float('nan')):>5.0f}% "
                f"{statistics.mean(r.after.deadhead_km for r in rs):>7.1f} "
                f"{statistics.mean(r.after.lateness_minutes for r in rs):>8.1f} "
                f"{statistics.mean(r.validator_checks for r in rs):>6.0f} "
                f"{_pct(ms, 50):>7.1f} {p99:>7.1f}{flag:<5} "
                f"{_pct(cpu_ms, 50):>7.1f} {_pct(cpu_ms, 99):>7.1f} "
                f"{statistics.mean(cpu_ms):>7.2f}  {dict(sorted(stops.items()))}"
            )
            row = {
                "p50": _pct(ms, 50),
                "p99": p99,
                "cpu_mean": statistics.mean(cpu_ms),
                "cpu_p99": _pct(cpu_ms, 99),
                "deadhead_km": statistics.mean(r.after.deadhead_km for r in rs),
            }
            saved[f"{spec}/{name}"] = row
            base = baseline.get(f"{spec}/{name}")
            if base:
                print(
                    f"{'':>7} {'':>10} vs baseline: mean cpu {base['cpu_mean']:.2f} -> "
                    f"{row['cpu_mean']:.2f} ms ({base['cpu_mean'] / row['cpu_mean']:.2f}x), "
                    f"p50 wall {base['p50']:.1f} -> {row['p50']:.1f} ms "
                    f"({base['p50'] / row['p50']:.2f}x), p99 wall {base['p99']:.1f} -> "
                    f"{row['p99']:.1f} ms ({base['p99'] / row['p99']:.2f}x), cpu p99 "
                    f"{base['cpu_p99']:.1f} -> {row['cpu_p99']:.1f} ms"
                    + (
                        f", mean deadhead {base['deadhead_km']:.1f} -> {row['deadhead_km']:.1f} km"
                        if "deadhead_km" in base
                        else ""
                    )
                )
    if args.save:
        with open(args.save, "w") as f:
            json.dump(saved, f, indent=1)


def _warm_up(policies: dict[str, MovePolicy], config: PassConfig) -> None:
    """Import CP-SAT and run each policy once, as a worker's prepare process does before it
    serves (else the first day that needs a re-plan pays the ~0.2 s import in its latency)."""
    import ortools.sat.python.cp_model  # noqa: F401

    problem, upstream = Problem.from_event(generate_day(25, 4, 1))
    for policy in policies.values():
        run_pass(problem, upstream, policy, config)


def _run_baseline(args: argparse.Namespace) -> str:
    """Run this script on the optimizer in `--baseline-tree`; the path of its --save file."""
    out = os.path.join(tempfile.mkdtemp(prefix="latency-base-"), "baseline.json")
    cmd = [sys.executable, os.path.abspath(__file__), "--no-exact", "--save", out]
    for flag in ("sizes", "days", "policies", "kind", "late_tolerance", "locked", "urgent"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.lookahead_depth is not None:
        cmd += ["--lookahead-depth", str(args.lookahead_depth)]
    env = dict(os.environ, PYTHONPATH=os.path.abspath(args.baseline_tree))
    print(f"baseline: {args.baseline_tree} (its rows first)", flush=True)
    subprocess.run(cmd, env=env, check=True)
    print("this checkout:", flush=True)
    return out


if __name__ == "__main__":
    main()
