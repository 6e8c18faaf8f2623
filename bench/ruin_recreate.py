"""The cost phase's ruin and recreate: deadhead, lateness, cost and latency, without vs with.

    python bench/ruin_recreate.py                                   # 60x8 and 100x13, 4 days
    python bench/ruin_recreate.py --classes 100x13 --per-class 10 --kinds patient --days
    python bench/ruin_recreate.py --classes 100x13 --per-class 20 --fresh --rr-work 1e6 \
        --rr-iterations 4000 --rr-temperature 5,0.2                # another budget, fresh days

On the held-out days of each class and kind (`optimizer.heldout`, the seeds `bench/heldout.py`
uses) and for each policy (greedy and the shipped DQN), the same pass twice in one run: the
default `PassConfig` with the phase off (`rr_iterations=0`, "before") and on ("after"). Per
group, the means of the final plan's deadhead km, lateness minutes and operating cost
(`Objective.cost`), the after/before ratio of the summed deadhead, the mean and largest pass
wall time, and the final gaps (the phase never changes one: it runs after fairness). `--days`
also prints every day. The load average is printed with the timings (2 cores shared).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace

from optimizer.heldout import SIZE_CLASSES, HeldOutSpec, heldout_days
from optimizer.policy import GreedyPolicy
from optimizer.registry import DEFAULT_MODEL_DIR, load_model
from optimizer.swap_pass import MovePolicy, PassConfig, PassResult, run_pass


@dataclass(frozen=True, slots=True)
class Row:
    group: str
    day: str
    policy: str
    before: PassResult
    after: PassResult
    ms_before: float
    ms_after: float


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", nargs="+", default=["60x8", "100x13"], help="NxK")
    ap.add_argument("--kinds", nargs="+", default=["generated", "patient"])
    ap.add_argument("--per-class", type=int, default=4)
    ap.add_argument("--policies", default="greedy,dqn")
    ap.add_argument("--days", action="store_true", help="print every day too")
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="fresh days of the same generators (seeds 8,000,000 / 9,000,000 up)",
    )
    ap.add_argument("--rr-work", type=float, help="the phase's budget (default: PassConfig's)")
    ap.add_argument("--rr-iterations", type=int, help="its round cap (default: PassConfig's)")
    ap.add_argument("--rr-temperature", help="HI,LO (default: PassConfig's)")
    args = ap.parse_args(argv)
    wanted = [tuple(int(x) for x in c.split("x")) for c in args.classes]
    # The held-out set's own seeds: a class's seeds depend on its index in SIZE_CLASSES.
    bases = {"generated_base": 8_000_000, "patient_base": 9_000_000} if args.fresh else {}
    spec = HeldOutSpec(
        per_class=args.per_class, classes=SIZE_CLASSES, kinds=tuple(args.kinds), **bases
    )
    tags = [f"{n}x{k}" for n, k in wanted]
    days = [d for d in heldout_days(spec) if any(f"-{t}-" in d.name for t in tags)]
    policies: dict[str, MovePolicy] = {}
    for name in args.policies.split(","):
        if name == "greedy":
            policies[name] = GreedyPolicy()
        elif name == "dqn":
            policies[name] = load_model(DEFAULT_MODEL_DIR, check_quality=False).policy()
    after_cfg = PassConfig()
    if args.rr_work is not None:
        after_cfg = replace(after_cfg, rr_work=args.rr_work)
    if args.rr_iterations is not None:
        after_cfg = replace(after_cfg, rr_iterations=args.rr_iterations)
    if args.rr_temperature:
        hi, lo = (float(x) for x in args.rr_temperature.split(","))
        after_cfg = replace(after_cfg, rr_temperature=(hi, lo))
    print(
        f"after: rr_work {after_cfg.rr_work:,.0f}, rr_iterations {after_cfg.rr_iterations}, "
        f"rr_temperature {after_cfg.rr_temperature}",
        flush=True,
    )
    before_cfg = replace(after_cfg, rr_iterations=0)
    rows: list[Row] = []
    started = time.perf_counter()
    for d in days:
        group = next(t for t in tags if f"-{t}-" in d.name)
        kind = "patient" if d.name.startswith("pt") else "generated"
        for name, policy in policies.items():
            t0 = time.perf_counter()
            before = run_pass(d.problem, d.assignment, policy, before_cfg)
            t1 = time.perf_counter()
            after = run_pass(d.problem, d.assignment, policy, after_cfg)
            t2 = time.perf_counter()
            row = Row(
                f"{kind} {group}", d.name, name, before, after, 1e3 * (t1 - t0), 1e3 * (t2 - t1)
            )
            rows.append(row)
            if args.days:
                print(_day_line(row), flush=True)
    print(f"{'group':<18} {'policy':<7} {'n':>2} {'km before':>9} {'km after':>8} {'ratio':>6} "
          f"{'late b':>7} {'late a':>7} {'cost b':>7} {'cost a':>7} {'ms b':>6} {'ms a':>6} "
          f"{'max b':>6} {'max a':>6} {'gaps':>5}")  # fmt: skip
    for group in dict.fromkeys(r.group for r in rows):
        for name in policies:
            sel = [r for r in rows if r.group == group and r.policy == name]
            print(_group_line(group, name, sel))
    load = os.getloadavg()
    print(f"{time.perf_counter() - started:.0f} s wall, load average {load[0]:.2f} / "
          f"{load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    return 0


def _cost(result: PassResult) -> float:
    return PassConfig().objective.cost(result.after.value)


def _day_line(r: Row) -> str:
    b, a = r.before.after, r.after.after
    return (f"{r.day:<22} {r.policy:<7} gap {b.gap}->{a.gap} km {b.deadhead_km:7.1f} -> "
            f"{a.deadhead_km:7.1f} late {b.lateness_minutes:6.1f} -> {a.lateness_minutes:6.1f} "
            f"cost {_cost(r.before):7.1f} -> {_cost(r.after):7.1f} "
            f"ms {r.ms_before:5.0f} -> {r.ms_after:5.0f}")  # fmt: skip


def _group_line(group: str, policy: str, sel: list[Row]) -> str:
    n = len(sel)

    def mean(values: list[float]) -> float:
        return sum(values) / max(n, 1)

    km_b = [r.before.after.deadhead_km for r in sel]
    km_a = [r.after.after.deadhead_km for r in sel]
    same_gap = all(r.before.after.gap == r.after.after.gap for r in sel)
    return (f"{group:<18} {policy:<7} {n:>2} {mean(km_b):9.1f} {mean(km_a):8.1f} "
            f"{sum(km_a) / max(sum(km_b), 1e-9):6.3f} "
            f"{mean([r.before.after.lateness_minutes for r in sel]):7.1f} "
            f"{mean([r.after.after.lateness_minutes for r in sel]):7.1f} "
            f"{mean([_cost(r.before) for r in sel]):7.1f} "
            f"{mean([_cost(r.after) for r in sel]):7.1f} "
            f"{mean([r.ms_before for r in sel]):6.0f} {mean([r.ms_after for r in sel]):6.0f} "
            f"{max(r.ms_before for r in sel):6.0f} {max(r.ms_after for r in sel):6.0f} "
            f"{'same' if same_gap else 'DIFF':>5}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
