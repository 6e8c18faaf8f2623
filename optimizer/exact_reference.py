"""The exact reference of a held-out day: the least gap, then the least deadhead at that gap.

Two deadhead references, both at the proven optimal gap and under the per-booking lateness
cap the pass obeys (window close + max(tolerance, input lateness): `feasibility.deadlines`):

* the *deadhead-only* minimum (issue 7's wording): the least deadhead of any plan at the gap,
  however late in total (up to the per-booking cap);
* the *same-punctuality* minimum (`late_capped=True`), per judged plan: the least deadhead
  of the plans at the gap that are at most as late in total as that plan. The pass prices a
  late minute at `Objective.late_weight` km (2 by default), so on days with a late tolerance
  (generated: 10 minutes) the deadhead-only minimum is often a plan that buys its kilometres
  with lateness the objective refuses on purpose; this reference compares like with like.
  Plans with the same lateness share one solve; a looser cap's bound also bounds a tighter
  cap's minimum (fewer plans), and a plan within a tighter cap is within the looser one.

Each reference gives a proven minimum (None if not proven within the time limit), a lower
bound on it (CP-SAT's or the Lagrangian one, `optimizer.deadhead_bound`) and the least deadhead
of a plan known to be at the gap (and within the cap): the excess of a pass plan lies between
the one against the known plan and the one against the bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from optimizer.feasibility import schedule_all
from optimizer.objective import count_gap
from optimizer.problem import IntArray, Problem

__all__ = ["BOUND_CPU_S", "CappedReference", "ExactReference", "exact_reference"]

BOUND_CPU_S = 150.0
"""CPU seconds the Lagrangian bound may take per solve (at least the solve's own limit): at
100x13 both of its passes need about 70 s on a quiet core; small days stop far sooner."""


@dataclass(frozen=True, slots=True)
class CappedReference:
    """The same-punctuality reference for one judged plan."""

    late_cap_minutes: float
    """The cap on total lateness: the judged plan's own."""
    min_deadhead_km: float | None
    """Least deadhead of the plans at the gap within the cap (None: not proven)."""
    bound_km: float | None
    """No plan at the gap within the cap has less deadhead."""
    best_km: float | None
    """The least deadhead of a plan known at the gap and within the cap."""


@dataclass(frozen=True, slots=True)
class ExactReference:
    gap: int | None
    lower_bound: int
    proven: bool
    status: str
    wall_s: float
    min_deadhead_km: float | None = None
    """Least deadhead among the plans at the optimal gap; None when not computed/proven."""
    min_deadhead_bound_km: float | None = None
    """No plan at the optimal gap has less deadhead (CP-SAT's bound when the solve stopped on
    its time limit; = `min_deadhead_km` when proven; None when not computed)."""
    best_deadhead_km: float | None = None
    """The least deadhead of a plan known at the optimal gap (CP-SAT's or the hint's): the
    minimum is at most this, so it bounds an excess from below."""
    capped: dict[str, CappedReference] = field(default_factory=dict)
    """The same-punctuality reference per judged plan (its label), for the plans at the
    optimal gap; empty when not computed."""


def exact_reference(
    problem: Problem,
    upstream: IntArray,
    *,
    hint: IntArray | None,
    time_limit_s: float,
    deadhead: bool = True,
    workers: int = 2,
    plans: Mapping[str, IntArray] | None = None,
    late_capped: bool = False,
) -> ExactReference:
    """CP-SAT's minimum gap; then the minimum deadhead at that gap (`solve_lexicographic`),
    proven or bounded; with `late_capped`, also the same-punctuality minimum for each of
    `plans` (the pass plans being judged, by label) at the optimal gap.

    `hint` should be a plan at the optimal gap with little deadhead (the caller's best)."""
    from optimizer import exact

    ex = exact.solve_min_gap(
        problem, upstream, time_limit_s=time_limit_s, hint=hint, workers=workers
    )
    if not (deadhead and ex.proven_optimal and ex.gap is not None):
        return ExactReference(ex.gap, ex.lower_bound, ex.proven_optimal, ex.status, ex.wall_s)
    gap = ex.gap
    res = exact.solve_lexicographic(
        problem,
        upstream,
        gap=gap,
        time_limit_s=time_limit_s,
        hint=hint,
        workers=workers,
        bound_time_limit_s=max(time_limit_s, BOUND_CPU_S),
    )
    min_dead = (
        float(res.deadhead_km) if res.proven_optimal and res.deadhead_km is not None else None
    )
    # A bound on every plan at the gap, whether or not CP-SAT found one in time.
    bound = float(res.lower_bound_km) if _positive(res.lower_bound_km) else None
    plans = dict(plans or {})
    given = ([hint] if hint is not None else []) + list(plans.values())
    at_gap = [p for p in given if _gap(problem, p) == gap]
    known = [float(res.deadhead_km)] if res.deadhead_km is not None else []
    known += [_deadhead(problem, p) for p in at_gap]
    best = min(known, default=None)
    out = ExactReference(gap, ex.lower_bound, True, ex.status, ex.wall_s, min_dead, bound, best)
    judged = {lb: p for lb, p in plans.items() if _gap(problem, p) == gap}
    if not late_capped or not judged:
        return out
    late = {lb: _lateness(problem, p) for lb, p in judged.items()}
    km = {lb: _deadhead(problem, p) for lb, p in judged.items()}
    free = (
        (float(res.deadhead_km), float(res.lateness_minutes or 0.0))
        if res.deadhead_km is not None
        else None
    )
    solved: dict[float, CappedReference] = {}
    looser_bound = bound  # the deadhead-only bound holds under any cap
    # Loosest cap first: its bound also bounds every tighter cap's minimum.
    for cap in sorted(set(late.values()), reverse=True):
        within = [lb for lb in judged if late[lb] <= cap + 1e-9]
        solved[cap] = _capped(
            exact.solve_lexicographic,
            (problem, upstream, gap, time_limit_s, workers),
            cap,
            ([km[lb] for lb in within], judged[min(within, key=km.__getitem__)]),
            (free, min_dead, looser_bound),
        )
        looser_bound = solved[cap].bound_km or looser_bound
    return replace(out, capped={lb: solved[late[lb]] for lb in judged})


def _capped(
    solve: Any,
    day: tuple[Problem, IntArray, int, float, int],
    cap: float,
    within: tuple[list[float], IntArray],
    free: tuple[tuple[float, float] | None, float | None, float | None],
) -> CappedReference:
    """The same-punctuality reference at one cap. `within`: the deadheads of the judged
    plans within the cap and the least of them (the hint); `free`: the deadhead-only
    solve's plan (km, lateness), its proven minimum and a bound that holds at this cap (the
    deadhead-only one or a looser cap's)."""
    problem, upstream, gap, time_limit_s, workers = day
    known, hint = within
    free_plan, free_min, valid_bound = free
    if free_plan is not None and free_plan[1] <= cap + 1e-9:
        known = [*known, free_plan[0]]
        if free_min is not None:
            # The deadhead-only minimum already keeps the cap: it is this one too.
            return CappedReference(cap, free_min, free_min, free_min)
    res = solve(
        problem,
        upstream,
        gap=gap,
        time_limit_s=time_limit_s,
        hint=hint,
        workers=workers,
        max_lateness_minutes=cap,
        bound_time_limit_s=max(time_limit_s, BOUND_CPU_S),
    )
    if res.deadhead_km is not None and (res.lateness_minutes or 0.0) <= cap + 1e-6:
        known = [*known, float(res.deadhead_km)]
    lowest = min(known)
    least = float(res.deadhead_km) if res.proven_optimal and res.deadhead_km is not None else None
    # A looser cap's minimum is at most this one, so its bound holds here too.
    lows = [b for b in (res.lower_bound_km, valid_bound) if b is not None and _positive(b)]
    return CappedReference(cap, least, min(max(lows), lowest) if lows else None, lowest)


def _positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _gap(problem: Problem, plan: IntArray) -> int:
    return count_gap(np.bincount(plan[plan >= 0], minlength=problem.n_drivers))


def _deadhead(problem: Problem, plan: IntArray) -> float:
    return float(sum(s.deadhead_km for s in schedule_all(problem, plan)))


def _lateness(problem: Problem, plan: IntArray) -> float:
    return float(sum(s.lateness_minutes for s in schedule_all(problem, plan)))
