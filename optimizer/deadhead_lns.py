"""Offline: a plan at the same gap with less deadhead, by ruin and recreate over driver subsets.

The exact references (`optimizer.exact_reference`) bound a pass plan's deadhead excess
between the best plan known at the gap and a lower bound on every such plan; at 100x13
CP-SAT's whole-day solve, hinted with the pass's plan, finds nothing better in a minute, so
the known plan was the pass's own and the excess was only known to be at most
(best - bound) / bound. This search finds better plans, so the part of the excess that is
the pass's (plans that exist and it misses) is told from the part that is the bound's.

Each round takes the rides of a few drivers whose days overlap most (a random first driver,
random subset size, a little noise in the ranking), and lets CP-SAT (`optimizer.exact`'s
model, the other drivers' rides fixed) hand them out again with the least empty kilometres,
keeping the day's gap, every booking's deadline (`feasibility.deadlines` of the input plan)
and, with `max_lateness_minutes`, the total lateness. A plan is kept when the ride model
agrees it is feasible, at the gap (and within the cap) and has less deadhead.

One CP-SAT worker, a seed and a deterministic time limit per solve: the same rounds give the
same plan on any machine; `seconds` (wall) stops early, which makes it machine-dependent.
Not part of the pass: a round costs about a second at 100x13.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from optimizer.exact import _build, _cap_lateness, _hint, _plan, _route_costs
from optimizer.feasibility import is_feasible_change, schedule_all
from optimizer.objective import count_gap, gap_floor
from optimizer.problem import IntArray, Problem

__all__ = ["LnsResult", "improve_deadhead"]


@dataclass(frozen=True, slots=True)
class LnsResult:
    """The best plan found (at most the start plan's deadhead, same gap, within the cap)."""

    assignment: IntArray
    deadhead_km: float
    lateness_minutes: float
    start_km: float
    rounds: int
    improvements: int
    wall_s: float


def improve_deadhead(
    problem: Problem,
    upstream: IntArray,
    plan: IntArray,
    *,
    rounds: int = 200,
    seconds: float | None = None,
    seed: int = 0,
    sizes: tuple[int, ...] = (3, 4, 5, 6),
    solve_deterministic_s: float = 4.0,
    max_lateness_minutes: float | None = None,
) -> LnsResult:
    """Less deadhead than `plan` at its gap (see the module docstring): at most `rounds`
    subset re-plans, stopping after `seconds` of wall time if given. `plan` must be a
    feasible change of `upstream` (the input plan, whose lateness sets the deadlines) and,
    with `max_lateness_minutes`, within that total lateness."""
    started = time.perf_counter()
    k_count = problem.n_drivers
    gap = _gap(plan, k_count)
    best = plan.copy()
    best_km, best_late = _km_late(problem, best)
    start_km = best_km
    rng = random.Random(seed)
    floor = gap_floor(int((upstream >= 0).sum()), k_count)
    done = improved = 0
    while done < rounds and (seconds is None or time.perf_counter() - started < seconds):
        done += 1
        drivers = _neighbourhood(problem, best, rng.choice(sizes), rng)
        cand = _resolve(
            problem,
            upstream,
            best,
            drivers,
            (gap, floor),
            solve_deterministic_s,
            max_lateness_minutes,
        )
        if cand is None or _gap(cand, k_count) > gap:
            continue
        if not is_feasible_change(problem, upstream, cand)[0]:
            continue
        km, late = _km_late(problem, cand)
        if max_lateness_minutes is not None and late > max_lateness_minutes + 1e-9:
            continue
        if km < best_km - 1e-6:
            best, best_km, best_late = cand, km, late
            improved += 1
    return LnsResult(
        best, best_km, best_late, start_km, done, improved, time.perf_counter() - started
    )


def _neighbourhood(problem: Problem, plan: IntArray, size: int, rng: random.Random) -> list[int]:
    """A random driver and the `size - 1` whose days (first to last pickup window) overlap
    its own most, with up to two hours of noise so rounds differ."""
    k_count = problem.n_drivers
    size = min(size, k_count)
    spans = []
    for k in range(k_count):
        rides = np.nonzero(plan == k)[0]
        t = problem.earliest[rides]
        spans.append((float(t.min()), float(t.max())) if len(rides) else (0.0, 0.0))
    first = rng.randrange(k_count)
    lo, hi = spans[first]

    def overlap(k: int) -> float:
        return min(hi, spans[k][1]) - max(lo, spans[k][0]) + rng.random() * 120.0

    others = sorted((k for k in range(k_count) if k != first), key=overlap, reverse=True)
    return [first, *others[: size - 1]]


def _resolve(
    problem: Problem,
    upstream: IntArray,
    plan: IntArray,
    drivers: list[int],
    gaps: tuple[int, int],
    deterministic_s: float,
    max_lateness_minutes: float | None,
) -> IntArray | None:
    """CP-SAT's least-deadhead plan of `drivers`' rides, the others as in `plan`."""
    gap, floor = gaps
    k_count = problem.n_drivers
    chosen = np.zeros(k_count, dtype=bool)
    chosen[drivers] = True
    rides = np.nonzero((plan >= 0) & chosen[np.maximum(plan, 0)])[0]
    excluded = np.ones((problem.n_bookings, k_count), dtype=bool)
    excluded[np.ix_(rides, np.nonzero(chosen)[0])] = False
    model = _build(problem, upstream, floor, plan, excluded)
    model.m.add(model.spread <= gap)
    cost = _route_costs(problem, model, drivers)
    if max_lateness_minutes is not None:
        _cap_lateness(problem, model, max_lateness_minutes, gap)
    model.m.minimize(sum(cost))
    _hint(model, plan)
    solver = cp_model.CpSolver()
    solver.parameters.max_deterministic_time = float(deterministic_s)
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    status = solver.solve(model.m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return _plan(model, solver, problem.n_bookings)


def _gap(plan: IntArray, k_count: int) -> int:
    return count_gap(np.bincount(plan[plan >= 0], minlength=k_count))


def _km_late(problem: Problem, plan: IntArray) -> tuple[float, float]:
    scheds = schedule_all(problem, plan)
    return (
        float(sum(s.deadhead_km for s in scheds)),
        float(sum(s.lateness_minutes for s in scheds)),
    )
