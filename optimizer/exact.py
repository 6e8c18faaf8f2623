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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from optimizer.deadhead_bound import DeadheadBound, allowed_drivers, deadhead_lower_bound
from optimizer.feasibility import is_feasible_change, schedule_all
from optimizer.objective import count_gap, gap_floor
from optimizer.problem import BoolArray, IntArray, Problem
from optimizer.ride_model import duration, leg

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


@dataclass(frozen=True, slots=True)
class LexicographicResult:
    """The least deadhead of any plan at a given ride-count gap (the second exact solve)."""

    gap: int
    deadhead_km: float | None
    """Deadhead of the best plan found, measured with the ride model (None: none found)."""
    proven_optimal: bool
    """No plan with this gap has less deadhead: CP-SAT proved it (to 1 m rounding), or the
    plan's deadhead meets the Lagrangian bound (`optimizer.deadhead_bound`)."""
    status: str
    assignment: IntArray | None
    verified: bool
    wall_s: float
    lower_bound_km: float = 0.0
    """No plan with this gap has less deadhead: the larger of CP-SAT's bound and the
    Lagrangian one (`optimizer.deadhead_bound`); = deadhead_km when proven."""
    lateness_minutes: float | None = None
    """Total lateness of the plan found, measured with the ride model."""


@dataclass
class _Model:
    """The CP-SAT model shared by both solves (see the module docstring)."""

    m: cp_model.CpModel
    x: dict[tuple[int, int], cp_model.IntVar]
    t: dict[int, cp_model.IntVar]
    """Pickup time per booking, in milliminutes."""
    spread: cp_model.LinearExpr
    allowed: BoolArray
    never: set[tuple[int, int]]
    assigned: list[int]


def _build(
    problem: Problem,
    assignment: IntArray,
    floor: int,
    keep: IntArray | None = None,
    excluded: BoolArray | None = None,
) -> _Model:
    assigned = _ints(np.nonzero(assignment >= 0)[0])
    # Violations the upstream plan already has are tolerated, as in the swap pass; lateness
    # is capped per booking at max(tolerance, its input lateness) (`feasibility.deadlines`).
    allowed, upper, shift_ok, limit_ok = allowed_drivers(problem, assignment)
    if excluded is not None and keep is not None:
        # Pairs no plan at least as good as `keep` uses (reduced-cost fixing); `keep`'s own
        # pairs stay, so it remains a solution even if rounding disagreed.
        mine = np.zeros_like(allowed)
        mine[assigned, keep[assigned]] = True
        allowed &= ~excluded | mine
    k_count = problem.n_drivers

    m = cp_model.CpModel()
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    t: dict[int, cp_model.IntVar] = {}
    for b in assigned:
        lo, hi = _up(problem.earliest[b]), _down(upper[b])
        t[b] = m.new_int_var(lo, max(lo, hi), f"t{b}")
        for k in _ints(np.nonzero(allowed[b])[0]):
            x[b, k] = m.new_bool_var(f"x{b}_{k}")
        m.add_exactly_one(x[b, k] for k in _ints(np.nonzero(allowed[b])[0]))
        dur = duration(problem, b)
        for k in _ints(np.nonzero(allowed[b])[0]):
            first, _ = leg(problem, k, -1, b)
            m.add(t[b] >= _up(problem.shift_start[k] + first)).only_enforce_if(x[b, k])
            if k not in shift_ok:
                m.add(t[b] <= _down(problem.shift_end[k] - dur)).only_enforce_if(x[b, k])

    never: set[tuple[int, int]] = set()
    ranked = sorted(assigned, key=lambda b: int(problem.order[b]))
    for i, a in enumerate(ranked):
        dur_a = duration(problem, a)
        for b in ranked[i + 1 :]:
            shared = _ints(np.nonzero(allowed[a] & allowed[b])[0])
            if len(shared) == 0:
                continue
            need = _up(dur_a + leg(problem, 0, a, b)[0])
            if _up(problem.earliest[b]) >= _down(upper[a]) + need:
                continue  # never binding
            if _up(problem.earliest[a]) + need > _down(upper[b]):
                never.add((a, b))
            for k in shared:
                if (a, b) in never:
                    m.add_bool_or([~x[a, k], ~x[b, k]])
                else:
                    m.add(t[b] - t[a] >= need).only_enforce_if([x[a, k], x[b, k]])

    counts: list[cp_model.IntVar] = []
    for k in range(k_count):
        c = m.new_int_var(0, len(assigned), f"c{k}")
        m.add(c == sum(x[b, k] for b in assigned if (b, k) in x))
        cap = int(problem.max_rides[k])
        if cap >= 0 and k not in limit_ok:
            m.add(c <= cap)
        counts.append(c)
    hi_c = m.new_int_var(0, len(assigned), "max")
    lo_c = m.new_int_var(0, len(assigned), "min")
    m.add_max_equality(hi_c, counts)
    m.add_min_equality(lo_c, counts)
    m.add(hi_c - lo_c >= floor)  # a theorem; it lets the solver prove the floor at once
    return _Model(m, x, t, hi_c - lo_c, allowed, never, assigned)


def _hint(model: _Model, plan: IntArray) -> None:
    for (b, k), var in model.x.items():
        model.m.add_hint(var, int(plan[b] == k))


def _solve(model: _Model, time_limit_s: float, workers: int) -> tuple[cp_model.CpSolver, Any]:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = 0
    return solver, solver.solve(model.m)


def _plan(model: _Model, solver: cp_model.CpSolver, n: int) -> IntArray:
    out = np.full(n, -1, dtype=np.int64)
    for (b, k), var in model.x.items():
        if solver.value(var):
            out[b] = k
    return out


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

    model = _build(problem, assignment, floor)
    model.m.minimize(model.spread)
    _hint(model, best_known)
    solver, status = _solve(model, time_limit_s, workers)
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
    out = _plan(model, solver, n)
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


def solve_lexicographic(
    problem: Problem,
    assignment: IntArray,
    *,
    gap: int | None = None,
    time_limit_s: float = 10.0,
    workers: int = 2,
    hint: IntArray | None = None,
    lagrangian: bool = True,
    max_lateness_minutes: float | None = None,
    bound_time_limit_s: float | None = None,
) -> LexicographicResult:
    """The least deadhead at the least gap: minimise the gap, then deadhead with the gap fixed.

    `gap`: the gap to fix (e.g. a proven optimum already known); default: `solve_min_gap`
    first, with the same limits. The second solve adds, per driver, a circuit over the
    bookings it may take in service order (an arc a -> b means b is a's next ride) and
    minimises the empty kilometres of the arcs taken, in metres. The Lagrangian bound
    (`optimizer.deadhead_bound`) is given to CP-SAT as a floor on that total and proves the
    plan found minimal where it meets it (`lagrangian=False`: CP-SAT alone, e.g. to check
    that bound against CP-SAT's own proofs).

    `max_lateness_minutes`: only plans whose total lateness (minutes picked up after the
    windows closed, summed) is at most this, e.g. a pass plan's own: the least deadhead at
    the same punctuality. The model allows 0.001 minute more per booking and hop (its
    rounding), so its minimum is never above the true one. The Lagrangian bound gets the
    same cap (`deadhead_lower_bound(max_lateness_minutes=...)`); a hint is used as the known
    plan only if it keeps the cap.

    `bound_time_limit_s`: CPU seconds for the Lagrangian bound (default: `time_limit_s`); its
    finer second pass needs about a minute at 100x13.
    """
    started = time.perf_counter()
    n, k_count = problem.n_bookings, problem.n_drivers
    if gap is None:
        first = solve_min_gap(
            problem, assignment, time_limit_s=time_limit_s, workers=workers, hint=hint
        )
        if first.gap is None or not first.proven_optimal:
            return LexicographicResult(
                first.gap if first.gap is not None else -1,
                None,
                False,
                f"GAP_{first.status}",
                None,
                False,
                time.perf_counter() - started,
            )
        gap = first.gap
        hint = first.assignment if hint is None or _gap_of(hint, k_count) != gap else hint
    assigned = np.nonzero(assignment >= 0)[0]
    # A bound that knows the ride counts (`optimizer.deadhead_bound`): CP-SAT's own is weak
    # from about 60 bookings up. It also proves a plan minimal where it meets it, and with a
    # feasible hint at this gap it drops the (ride, driver) pairs no plan as good can use.
    known = None
    if (
        hint is not None
        and _gap_of(hint, k_count) == gap
        and is_feasible_change(problem, assignment, hint)[0]
        and (
            max_lateness_minutes is None
            or _lateness_of(problem, hint) <= max_lateness_minutes + 1e-9
        )
    ):
        known = _deadhead_of(problem, hint)
    else:
        hint = None
    lagrange = (
        deadhead_lower_bound(
            problem,
            assignment,
            gap,
            upper_km=known,
            time_limit_s=time_limit_s if bound_time_limit_s is None else bound_time_limit_s,
            max_lateness_minutes=max_lateness_minutes,
        )
        if lagrangian
        else DeadheadBound(0.0, 0, True)
    )
    if not lagrange.feasible_routes:
        return LexicographicResult(
            gap, None, False, "INFEASIBLE", None, False, time.perf_counter() - started, math.inf
        )
    usable = hint if known is not None else None
    model = _build(
        problem, assignment, gap_floor(len(assigned), k_count), usable, lagrange.excluded
    )
    m = model.m
    m.add(model.spread == gap)
    cost = _route_costs(problem, model, range(k_count))
    if max_lateness_minutes is not None:
        _cap_lateness(problem, model, max_lateness_minutes, gap)
    total = sum(cost)
    # Each arc's metres are rounded (to 0.5 m), so the model's total is at least this.
    m.add(total >= math.floor(1000.0 * lagrange.bound_km - 0.5 * len(assigned)))
    m.minimize(total)
    if hint is not None and _gap_of(hint, k_count) == gap:
        _hint(model, hint)
    solver, status = _solve(model, time_limit_s, workers)
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return LexicographicResult(
            gap, None, False, name, None, False, time.perf_counter() - started, lagrange.bound_km
        )
    out = _plan(model, solver, n)
    verified, _ = is_feasible_change(problem, assignment, out)
    km = _deadhead_of(problem, out)
    # CP-SAT's bound is in rounded metres (each arc to 0.5 m): shave that off to stay a bound.
    bound = max(0.0, solver.best_objective_bound / 1000.0 - 0.0005 * n, lagrange.bound_km)
    met = status == cp_model.OPTIMAL or km <= bound + 1e-9
    proven = met and verified and _gap_of(out, k_count) == gap
    return LexicographicResult(
        gap=gap,
        deadhead_km=km,
        proven_optimal=proven,
        status=name,
        assignment=out,
        verified=verified,
        wall_s=time.perf_counter() - started,
        lower_bound_km=min(km, bound),
        lateness_minutes=_lateness_of(problem, out),
    )


def _route_costs(
    problem: Problem, model: _Model, drivers: Iterable[int]
) -> list[cp_model.LinearExpr]:
    """Per driver of `drivers`, a circuit over the rides it may take in service order (an
    arc a -> b: b is a's next ride); the terms of their empty metres (first leg included).
    Also used by `optimizer.deadhead_lns` on a few drivers at a time."""
    m, x = model.m, model.x
    cost: list[cp_model.LinearExpr] = []
    order = problem.order
    for k in drivers:
        nodes = sorted((b for b in model.assigned if (b, k) in x), key=lambda b: int(order[b]))
        arcs: list[tuple[int, int, Any]] = []
        used = m.new_bool_var(f"used{k}")
        arcs.append((0, 0, ~used))
        for i, b in enumerate(nodes, start=1):
            arcs.append((i, i, ~x[b, k]))
            start = m.new_bool_var(f"s{k}_{b}")
            arcs.append((0, i, start))
            cost.append(_metres(leg(problem, k, -1, b)[1]) * start)
            arcs.append((i, 0, m.new_bool_var(f"e{k}_{b}")))
            for j, c in enumerate(nodes[i:], start=i + 1):
                if (b, c) in model.never:
                    continue
                arc = m.new_bool_var(f"a{k}_{b}_{c}")
                arcs.append((i, j, arc))
                cost.append(_metres(leg(problem, k, b, c)[1]) * arc)
        m.add_circuit(arcs)
        for b in nodes:
            m.add_implication(x[b, k], used)
    return cost


def _cap_lateness(problem: Problem, model: _Model, cap_minutes: float, gap: int) -> None:
    """Total lateness at most `cap_minutes`. The model's times run up to 0.001 minute late
    per hop against the ride model's (durations rounded up), so allow that much more per
    booking and hop: the capped model keeps every plan the cap keeps."""
    m, t = model.m, model.t
    # A booking's drift is at most one per hop before it in its route, plus one for the
    # rounded window close: at most (rides per driver + 1) per booking.
    n = len(model.assigned)
    most = -(-n // max(1, problem.n_drivers)) + gap + 1
    cap = math.floor(cap_minutes * _SCALE + 1e-6)
    late = []
    for b in model.assigned:
        close, last = _down(problem.latest[b]), int(list(t[b].proto.domain)[-1])
        if last <= close:
            continue  # never late
        m.add(t[b] <= close + cap + most)  # no booking alone is later than all of them
        v = m.new_int_var(0, last - close, f"late{b}")
        m.add(v >= t[b] - close)
        late.append(v)
    m.add(sum(late) <= cap + n * most)


def _lateness_of(problem: Problem, plan: IntArray) -> float:
    return float(sum(s.lateness_minutes for s in schedule_all(problem, plan)))


def _deadhead_of(problem: Problem, plan: IntArray) -> float:
    return float(sum(s.deadhead_km for s in schedule_all(problem, plan)))


def _gap_of(plan: IntArray, k: int) -> int:
    return count_gap(_counts(plan, k))


def _metres(km: float) -> int:
    return round(float(km) * 1000)


def _ints(values: IntArray) -> list[int]:
    return [int(v) for v in values]


def _counts(assignment: IntArray, k: int) -> IntArray:
    return np.bincount(assignment[assignment >= 0], minlength=k).astype(np.int64)


def _up(minutes: float) -> int:
    return math.ceil(minutes * _SCALE - 1e-6)


def _down(minutes: float) -> int:
    return math.floor(minutes * _SCALE + 1e-6)
