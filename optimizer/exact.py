"""The exact baseline: the least ride-count gap any plan reaches under the same hard constraints.

A CP-SAT model over the same problem and ride model as the swap pass. Bookings the upstream
left unassigned stay so; locked bookings stay with their driver; as in the pass, a violation
the upstream plan already had is tolerated (no plan may add one), so the upstream plan is
always a solution and is given as a hint.

The model: `x[b, k]` (booking b with driver k) and one pickup time `t[b]` per booking. A driver
serves in the fixed service order, so two bookings a before b on the same driver need
`t[b] >= t[a] + service[a] + ride[a] + travel(a -> b)`. Requiring that for every such pair, not
only consecutive ones, is exact when travel times obey the triangle inequality (the haversine
model and Euclidean matrices do); for an arbitrary router matrix the solution is re-checked
with the ride model and `verified` says whether it held. Times are integers in milliminutes,
durations rounded up and deadlines down, so a solution of the model is a solution of the ride
model.

`proven_optimal` is True only when CP-SAT proved it, or when the gap equals the structural floor
(0 when rides divide evenly among drivers, else 1), which no plan can beat.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from optimizer.feasibility import Violation, is_feasible_change, schedule_all
from optimizer.moves import solo_feasible
from optimizer.objective import count_gap, gap_floor
from optimizer.problem import IntArray, Problem

_SCALE = 1000  # model time unit: 1/1000 minute


@dataclass(frozen=True, slots=True)
class ExactResult:
    """The exact baseline's answer for one day."""

    gap: int | None
    """Best gap found: by CP-SAT, else the known plan (hint or upstream) when CP-SAT found
    none in time (then `status` ends in `_KNOWN_PLAN`); None only when neither is usable."""
    lower_bound: int
    """No plan has a smaller gap (the solver's proven bound, at least the structural floor)."""
    proven_optimal: bool
    status: str
    """CP-SAT's status name, or `FLOOR` when the hint already met the structural floor."""
    assignment: IntArray | None
    verified: bool
    """The solution passed the ride model's own feasibility check."""
    wall_s: float


def solve_min_gap(
    problem: Problem,
    assignment: IntArray,
    *,
    time_limit_s: float = 10.0,
    workers: int = 2,
    hint: IntArray | None = None,
) -> ExactResult:
    """Minimise the ride-count gap over every plan that adds no violation to `assignment`."""
    started = time.perf_counter()
    n, k_count = problem.n_bookings, problem.n_drivers
    assigned = np.nonzero(assignment >= 0)[0]
    floor = gap_floor(len(assigned), k_count)
    best_known = hint if hint is not None else assignment
    if count_gap(_counts(best_known, k_count)) <= floor:
        ok, _ = is_feasible_change(problem, assignment, best_known)
        if ok:
            return ExactResult(
                floor, floor, True, "FLOOR", best_known.copy(), True, time.perf_counter() - started
            )

    # Violations the upstream plan already has are tolerated, as in the swap pass.
    input_violations: set[Violation] = set()
    for sched in schedule_all(problem, assignment):
        input_violations |= sched.violations
    late_ok = {b for r, b in input_violations if r in ("time_window", "priority")}
    cap_ok = {b for r, b in input_violations if r == "capability"}
    shift_ok = {d for r, d in input_violations if r == "shift"}
    limit_ok = {d for r, d in input_violations if r == "driver_limit"}

    tt = problem.travel
    horizon = float(max(problem.shift_end.max(), problem.latest.max() if n else 0.0)) + 24 * 60
    upper = np.where(
        np.isin(np.arange(n), list(late_ok)), horizon, problem.latest + problem.tolerance
    )
    solo = solo_feasible(problem)
    allowed = np.zeros((n, k_count), dtype=bool)
    for b in (int(i) for i in assigned):
        if problem.locked[b]:
            allowed[b, assignment[b]] = True
            continue
        reach = solo[b] | (b in late_ok) | (b in cap_ok)
        if b not in cap_ok:
            reach &= problem.capable[b]
        allowed[b] = reach
        allowed[b, assignment[b]] = True

    m = cp_model.CpModel()
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    t: dict[int, cp_model.IntVar] = {}
    for b in (int(i) for i in assigned):
        lo, hi = _up(problem.earliest[b]), _down(upper[b])
        t[b] = m.new_int_var(lo, max(lo, hi), f"t{b}")
        for k in _ints(np.nonzero(allowed[b])[0]):
            x[b, k] = m.new_bool_var(f"x{b}_{k}")
        m.add_exactly_one(x[b, k] for k in _ints(np.nonzero(allowed[b])[0]))
        dur = problem.service[b] + tt.ride[b]
        for k in _ints(np.nonzero(allowed[b])[0]):
            m.add(t[b] >= _up(problem.shift_start[k] + tt.start_to_pickup[k, b])).only_enforce_if(
                x[b, k]
            )
            if k not in shift_ok:
                m.add(t[b] <= _down(problem.shift_end[k] - dur)).only_enforce_if(x[b, k])

    ranked = sorted(_ints(assigned), key=lambda b: int(problem.order[b]))
    for i, a in enumerate(ranked):
        dur_a = problem.service[a] + tt.ride[a]
        for b in ranked[i + 1 :]:
            shared = _ints(np.nonzero(allowed[a] & allowed[b])[0])
            if len(shared) == 0:
                continue
            need = _up(dur_a + tt.dropoff_to_pickup[a, b])
            if _up(problem.earliest[b]) >= _down(upper[a]) + need:
                continue  # never binding
            never = _up(problem.earliest[a]) + need > _down(upper[b])
            for k in shared:
                if never:
                    m.add_bool_or([~x[a, k], ~x[b, k]])
                else:
                    m.add(t[b] - t[a] >= need).only_enforce_if([x[a, k], x[b, k]])

    counts: list[cp_model.IntVar] = []
    for k in range(k_count):
        c = m.new_int_var(0, len(assigned), f"c{k}")
        m.add(c == sum(x[b, k] for b in _ints(assigned) if (b, k) in x))
        cap = int(problem.max_rides[k])
        if cap >= 0 and k not in limit_ok:
            m.add(c <= cap)
        counts.append(c)
    hi_c = m.new_int_var(0, len(assigned), "max")
    lo_c = m.new_int_var(0, len(assigned), "min")
    m.add_max_equality(hi_c, counts)
    m.add_min_equality(lo_c, counts)
    m.add(hi_c - lo_c >= floor)  # a theorem; it lets the solver prove the floor at once
    m.minimize(hi_c - lo_c)
    for b in _ints(assigned):
        for k in _ints(np.nonzero(allowed[b])[0]):
            m.add_hint(x[b, k], int(best_known[b] == k))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = 0
    status = solver.solve(m)
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        # No solution in time: the best known plan (the hint, else the upstream plan) is
        # still an upper bound, reported as such and never as proven.
        ok, _ = is_feasible_change(problem, assignment, best_known)
        known_gap = count_gap(_counts(best_known, k_count)) if ok else None
        bound = max(floor, math.ceil(solver.best_objective_bound - 1e-6)) if ok else floor
        return ExactResult(
            gap=known_gap,
            lower_bound=min(bound, known_gap) if known_gap is not None else floor,
            proven_optimal=False,
            status=f"{name}_KNOWN_PLAN" if ok else name,
            assignment=best_known.copy() if ok else None,
            verified=ok,
            wall_s=time.perf_counter() - started,
        )
    out = np.full(n, -1, dtype=np.int64)
    for (b, k), var in x.items():
        if solver.value(var):
            out[b] = k
    gap = count_gap(_counts(out, k_count))
    verified, _ = is_feasible_change(problem, assignment, out)
    bound = max(floor, math.ceil(solver.best_objective_bound - 1e-6))
    return ExactResult(
        gap=gap,
        lower_bound=bound,
        proven_optimal=(status == cp_model.OPTIMAL or gap <= floor) and verified,
        status=name,
        assignment=out,
        verified=verified,
        wall_s=time.perf_counter() - started,
    )


def _ints(values: IntArray) -> list[int]:
    return [int(v) for v in values]


def _counts(assignment: IntArray, k: int) -> IntArray:
    return np.bincount(assignment[assignment >= 0], minlength=k).astype(np.int64)


def _up(minutes: float) -> int:
    return math.ceil(minutes * _SCALE - 1e-6)


def _down(minutes: float) -> int:
    return math.floor(minutes * _SCALE + 1e-6)
