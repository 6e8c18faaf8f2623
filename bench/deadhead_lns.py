"""Whose is the deadhead excess: the pass's (better plans exist) or the bound's (it is loose)?

    python bench/deadhead_lns.py --kinds generated patient --classes 100x13 --per-class 2 \
        --rounds 300 --rows FILE

Per held-out day (the days `bench/heldout.py` uses for the same arguments) and policy (DQN
and greedy, the default pass config): the pass plan's deadhead; the least deadhead of a plan
at the same gap found by `optimizer.deadhead_lns` (ruin and recreate over driver subsets,
started from the pass plan); and the Lagrangian lower bound (`optimizer.deadhead_bound`).
Two references, as `bench/heldout.py --late-capped`: *deadhead-only* (any lateness up to
each booking's deadline; one search from the best pass plan serves both policies) and
*same punctuality* (plans no later in total than the policy's own plan).

"pass > best %" is the excess the pass certainly has (a plan that much better exists);
"best > bound %" is at most how loose the bound is there. Their product is the excess's
upper bound of `bench/heldout.py`, with the search's plan as the best known.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from optimizer.deadhead_bound import deadhead_lower_bound
from optimizer.deadhead_lns import improve_deadhead
from optimizer.heldout import HeldOutSpec, heldout_days
from optimizer.policy import GreedyPolicy
from optimizer.registry import DEFAULT_MODEL_DIR, load_model
from optimizer.swap_pass import MovePolicy, PassConfig, run_pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", nargs="+", default=["generated", "patient"])
    ap.add_argument("--classes", nargs="+", default=["100x13"], help="size classes NxK")
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--first", type=int, default=0, help="skip this many days per class")
    ap.add_argument("--rounds", type=int, default=300, help="subset re-plans per search")
    ap.add_argument("--seconds", type=float, help="also stop each search after this wall time")
    ap.add_argument("--bound-s", type=float, default=60.0, help="CPU limit of each bound")
    ap.add_argument("--rows", type=Path, help="append each day's figures to this JSON-lines file")
    args = ap.parse_args(argv)

    policies: dict[str, MovePolicy] = {
        "dqn": load_model(DEFAULT_MODEL_DIR, check_quality=False).policy(),
        "greedy": GreedyPolicy(),
    }
    classes = tuple((int(n), int(k)) for n, k in (c.split("x") for c in args.classes))
    spec = HeldOutSpec(
        per_class=args.first + args.per_class, classes=classes, kinds=tuple(args.kinds)
    )
    days = [d for d in heldout_days(spec) if _index(d.name) >= args.first]
    started = time.perf_counter()
    print(
        f"{len(days)} days; {args.rounds} rounds per search"
        + (f", at most {args.seconds:.0f} s" if args.seconds else "")
    )
    print(f"{'day':<22} {'reference':<16} {'pass km':>8} {'best km':>8} {'bound km':>8} "
          f"{'pass > best %':>13} {'best > bound %':>14}")  # fmt: skip
    for d in days:
        rows = _day(d.problem, d.assignment, policies, args)
        for r in rows:
            print(f"{d.name:<22} {r['reference']:<16} {r['pass_km']:8.1f} {r['best_km']:8.1f} "
                  f"{r['bound_km']:8.1f} {r['pass_over_best_pct']:13.1f} "
                  f"{r['best_over_bound_pct']:14.1f}", flush=True)  # fmt: skip
            if args.rows:
                with args.rows.open("a") as f:
                    f.write(json.dumps({"day": d.name, **r}) + "\n")
    load = os.getloadavg()
    print(f"{time.perf_counter() - started:.0f} s wall, load average "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    return 0


def _day(
    problem: Any, upstream: Any, policies: dict[str, MovePolicy], args: argparse.Namespace
) -> list[dict[str, Any]]:
    config = PassConfig()
    plans = {lb: run_pass(problem, upstream, pol, config) for lb, pol in policies.items()}
    gap = min(r.after.gap for r in plans.values())
    at_gap = {lb: r for lb, r in plans.items() if r.after.gap == gap}
    out = []
    # Deadhead-only: one search from the best pass plan at the gap serves every policy.
    best_lb = min(at_gap, key=lambda lb: at_gap[lb].after.deadhead_km)
    free = _search(problem, upstream, at_gap[best_lb].assignment, args, None)
    bound = deadhead_lower_bound(
        problem, upstream, gap, upper_km=free.deadhead_km, time_limit_s=args.bound_s
    ).bound_km
    # Same punctuality: each policy against plans no later in total than its own.
    done: dict[float, tuple[Any, float]] = {}
    for lb, r in at_gap.items():
        cap = round(r.after.lateness_minutes, 9)
        if cap not in done:
            found = _search(problem, upstream, r.assignment, args, cap)
            b = deadhead_lower_bound(
                problem,
                upstream,
                gap,
                upper_km=found.deadhead_km,
                time_limit_s=args.bound_s,
                max_lateness_minutes=cap,
            ).bound_km
            # Fewer plans under a cap: the deadhead-only bound holds too (and may be higher).
            done[cap] = (found, max(b, bound))
        found, b = done[cap]
        # A plan of the other policy within this cap is also a known plan.
        best = min(
            [found.deadhead_km]
            + [o.after.deadhead_km for o in at_gap.values() if o.after.lateness_minutes <= cap]
        )
        out.append(_row(f"{lb} same-late", r.after.deadhead_km, best, b, found))
    # A plan found within a cap is at the gap too: the least of all is the best known.
    known = min([free.deadhead_km] + [f.deadhead_km for f, _ in done.values()])
    free_rows = [
        _row(f"{lb} deadhead", r.after.deadhead_km, known, bound, free) for lb, r in at_gap.items()
    ]
    return free_rows + out


def _search(problem: Any, upstream: Any, plan: Any, args: argparse.Namespace, cap: Any) -> Any:
    return improve_deadhead(
        problem,
        upstream,
        plan,
        rounds=args.rounds,
        seconds=args.seconds,
        max_lateness_minutes=cap,
    )


def _row(ref: str, pass_km: float, best_km: float, bound_km: float, found: Any) -> dict[str, Any]:
    best_km = min(best_km, pass_km)
    return {
        "reference": ref,
        "pass_km": pass_km,
        "best_km": best_km,
        "bound_km": bound_km,
        "pass_over_best_pct": 100.0 * (pass_km / best_km - 1.0),
        "best_over_bound_pct": 100.0 * (best_km / bound_km - 1.0),
        "pass_over_bound_pct": 100.0 * (pass_km / bound_km - 1.0),
        "search_rounds": found.rounds,
        "search_s": round(found.wall_s, 1),
    }


def _index(name: str) -> int:
    """The day's index within its class: its seed's last three digits."""
    return int(name.rsplit("-s", 1)[1]) % 1000


if __name__ == "__main__":
    raise SystemExit(main())
