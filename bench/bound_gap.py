"""Where the Lagrangian deadhead bound's slack comes from, on one held-out day.

    python bench/bound_gap.py --kind patient --size 100x13 --seed 8100000
    python bench/bound_gap.py --kind patient --size 40x6 --seed 8100001 --prove

Prints, at the day's optimal gap: the bound with one pass (4 time buckets) and with the default
second pass (8), each with its CPU seconds; the LP value of the set-partitioning master over
the same relaxed routes (column generation, pricing by the bound's own DP, GLOP for the master),
which no multipliers can beat (the Lagrangian dual equals it); with `--prove`, CP-SAT's proven
minimum (small days only). Bound close to the LP value: the multipliers are converged and the
rest of the distance to the minimum is the master's integrality gap.

The master's columns are whole choices (one route per driver, counts in one band), as the
Lagrangian subproblem makes them, so its LP value is exactly the Lagrangian dual. The column
generation is stabilised by pricing at a point between the master's duals and the best
multipliers seen (Wentges smoothing); its restricted master value is an upper estimate that
falls to the LP value, and `L` at each priced point is a bound that rises to it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from ortools.linear_solver import pywraplp

from optimizer import _route_tables as rt
from optimizer import deadhead_bound as db
from optimizer.exact import solve_lexicographic, solve_min_gap
from optimizer.generate import generate_day
from optimizer.patient_transport import patient_days
from optimizer.problem import FloatArray, IntArray, Problem

_PENALTY = 1e3  # km per unit of a ride's coverage the master leaves uncovered or doubled


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=["generated", "patient"], default="patient")
    ap.add_argument("--size", default="100x13")
    ap.add_argument("--seed", type=int, default=8_100_000)
    ap.add_argument("--buckets", type=int, default=4, help="time buckets of the LP's routes")
    ap.add_argument("--columns", type=int, default=600, help="most pricing rounds")
    ap.add_argument("--prove", action="store_true", help="also CP-SAT's minimum (small days)")
    args = ap.parse_args(argv)
    n, k = (int(x) for x in args.size.split("x"))
    problem, upstream = _day(args.kind, (n, k), args.seed)
    gap = solve_min_gap(problem, upstream, time_limit_s=30, workers=1)
    if gap.gap is None or not gap.proven_optimal:
        print("the optimal gap is not proven in 30 s")
        return 1
    print(f"{args.kind} {args.size} seed {args.seed}: optimal gap {gap.gap}")
    for label, fine in (("one pass, 4 buckets", 0), ("two passes, 4 then 8", 8)):
        t = time.process_time()
        b = db.deadhead_lower_bound(problem, upstream, gap.gap, fine_buckets=fine)
        print(f"  bound, {label}: {b.bound_km:.3f} km, {time.process_time() - t:.1f} s CPU")
    t = time.process_time()
    lp, best = lp_value(problem, upstream, gap.gap, args.buckets, args.columns)
    print(
        f"  LP of the master ({args.buckets} buckets): at most {lp:.3f} km, at least "
        f"{best:.3f} km (column generation, {time.process_time() - t:.1f} s CPU)"
    )
    if args.prove:
        ex = solve_lexicographic(problem, upstream, gap=gap.gap, time_limit_s=120, workers=1)
        print(f"  CP-SAT: {ex.status}, {ex.deadhead_km} km (bound {ex.lower_bound_km})")
    print(f"  load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


def lp_value(
    problem: Problem, upstream: IntArray, gap: int, buckets: int, rounds: int
) -> tuple[float, float]:
    """(the restricted master's LP value, the best `L` priced): the master's true LP value
    lies between them (equal when the column generation closed). With the 1000-step
    subgradient ascent's choices as the first columns, then `rounds` stabilised pricings."""
    setup = db._setup(problem, upstream, gap)
    assert setup is not None and setup[1], "no rides or no plan at this gap"
    day, bands, top = setup
    cap = day[4]
    tables = rt.build_tables(problem, day, top, buckets, None, db._MAX_FINE_TABLE)
    # A subgradient ascent first (as the bound's), its choices the master's first columns.
    columns: dict[bytes, tuple[float, FloatArray]] = {}
    lam = center = rt.least_incoming(tables)
    best, step, since = -np.inf, 1.0, 0
    for _ in range(1000):
        val, km, served = _price(tables, lam, bands, gap, cap)
        _add(columns, km, served)
        if val > best + 1e-9:
            best, center, since = val, lam, 0
        else:
            since += 1
            if since >= 50:
                step, since = step / 2.0, 0
        grad = 1.0 - served
        norm = float(grad @ grad)
        if norm == 0 or step < 1e-4:
            break
        lam = lam + step * (0.05 * abs(val) + 1.0) / norm * grad
    value = np.inf
    duals = center
    for _ in range(rounds):
        point = 0.5 * center + 0.5 * duals
        val, km, served = _price(tables, point, bands, gap, cap)
        if val > best:
            best, center = val, point
        _add(columns, km, served)
        value, duals = _master(list(columns.values()))
        if value - best <= 1e-5 * max(1.0, abs(value)):
            break
    return value, best


def _add(columns: dict[bytes, tuple[float, FloatArray]], km: float, served: FloatArray) -> None:
    """Keep the cheapest choice per coverage (another one covering alike adds nothing)."""
    key = served.tobytes()
    if key not in columns or km < columns[key][0]:
        columns[key] = (km, served)


def _price(
    tables: rt.Tables, lam: FloatArray, bands: list[int], gap: int, cap: IntArray
) -> tuple[float, float, FloatArray]:
    """L(lam), and its minimising choice's km and times each ride is served."""
    value, grad, ok, _ = db._lagrangian((lam, 0.0), tables, bands, gap, cap)
    assert ok
    served = 1.0 - grad
    return value, value - float(lam.sum()) + float(lam @ served), served


def _master(columns: list[tuple[float, FloatArray]]) -> tuple[float, FloatArray]:
    """The restricted master (one whole choice in convex combination, each ride covered
    once, a penalised slack either way): its value and the rides' duals."""
    solver = pywraplp.Solver.CreateSolver("GLOP")
    n = len(columns[0][1])
    z = [solver.NumVar(0.0, solver.infinity(), "") for _ in columns]
    over = [solver.NumVar(0.0, solver.infinity(), "") for _ in range(n)]
    under = [solver.NumVar(0.0, solver.infinity(), "") for _ in range(n)]
    rows = []
    for i in range(n):
        row = solver.Constraint(1.0, 1.0)
        for j, (_, served) in enumerate(columns):
            if served[i]:
                row.SetCoefficient(z[j], float(served[i]))
        row.SetCoefficient(under[i], 1.0)
        row.SetCoefficient(over[i], -1.0)
        rows.append(row)
    one = solver.Constraint(1.0, 1.0)
    objective = solver.Objective()
    for j, (km, _) in enumerate(columns):
        one.SetCoefficient(z[j], 1.0)
        objective.SetCoefficient(z[j], km)
    for v in over + under:
        objective.SetCoefficient(v, _PENALTY)
    objective.SetMinimization()
    assert solver.Solve() == pywraplp.Solver.OPTIMAL
    return objective.Value(), np.array([r.dual_value() for r in rows])


def _day(kind: str, size: tuple[int, int], seed: int) -> tuple[Problem, IntArray]:
    """As the held-out table builds it (patient days without late tolerance)."""
    if kind == "generated":
        return Problem.from_event(generate_day(size[0], size[1], seed))
    day = patient_days([size], [seed])[0]
    return day.problem, day.assignment


if __name__ == "__main__":
    sys.exit(main())
