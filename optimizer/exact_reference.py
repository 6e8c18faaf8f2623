"""The exact reference of a held-out day: the least gap, then the least deadhead at that gap.

Two deadhead references, both at the proven optimal gap and under the per-booking lateness
cap the pass obeys (window close + max(tolerance, input lateness): `feasibility.deadlines`):

* the *deadhead-only* minimum (issue 7's wording): the least deadhead of any plan at the gap,
  however late in total (up to the per-booking cap);
* the *same-punctuality* minimum (`late_capped=True`): the least deadhead of the plans at the
  gap that are at most as late in total as the latest of the pass plans being judged. The
  pass prices a late minute at `Objective.late_weight` km (2 by default), so on days with a
  late tolerance (generated: 10 minutes) the deadhead-only minimum is often a plan that buys
  its kilometres with lateness the objective refuses on purpose; this reference compares
  like with like. One cap per day, the largest lateness of the policies' plans: for a policy
  whose plan is less late, the reference is looser (lower), so its excess is overstated,
  never understated.

Each reference gives a proven minimum (None if not proven within the time limit), a lower
bound on it (CP-SAT's or the Lagrangian one, `optimizer.deadhead_bound`) and the least deadhead
of a plan known to be at the gap (and within the cap): the excess of a pass plan lies between
the one against the known plan and the one against the bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from optimizer.feasibility import schedule_all
from optimizer.objective import count_gap
from optimizer.problem import IntArray, Problem

__all__ = ["ExactReference", "exact_reference"]


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
    late_cap_minutes: float | None = None
    """The same-punctuality reference's cap on total lateness (the largest lateness of the
    pass plans at the gap); None when that reference was not computed."""
    capped_min_deadhead_km: float | None = None
    """Least deadhead of the plans at the gap within `late_cap_minutes` (None: not proven)."""
    capped_bound_km: float | None = None
    """No plan at the gap within the cap has less deadhead."""
    capped_best_km: float | None = None
    """The least deadhead of a plan known at the gap and within the cap."""


def exact_reference(
    problem: Problem,
    upstream: IntArray,
    *,
    hint: IntArray | None,
    time_limit_s: float,
    deadhead: bool = True,
    workers: int = 2,
    plans: Sequence[IntArray] = (),
    late_capped: bool = False,
) -> ExactReference:
    """CP-SAT's minimum gap; then the minimum deadhead at that gap (`solve_lexicographic`),
    proven or bounded; with `late_capped`, also the same-punctuality minimum for `plans`
    (the pass plans being judged; those at the optimal gap set the cap).

    `hint` should be a plan at the optimal gap with little deadhead (the caller's best)."""
    from optimizer import exact

    ex = exact.solve_min_gap(
        problem, upstream, time_limit_s=time_limit_s, hint=hint, workers=workers
    )
    if not (deadhead and ex.proven_optimal and ex.gap is not None):
        return ExactReference(ex.gap, ex.lower_bound, ex.proven_optimal, ex.status, ex.wall_s)
    gap = ex.gap
    res = exact.solve_lexicographic(
        problem, upstream, gap=gap, time_limit_s=time_limit_s, hint=hint, workers=workers
    )
    min_dead = (
        float(res.deadhead_km) if res.proven_optimal and res.deadhead_km is not None else None
    )
    # A bound on every plan at the gap, whether or not CP-SAT found one in time.
    bound = float(res.lower_bound_km) if _positive(res.lower_bound_km) else None
    given = ([hint] if hint is not None else []) + list(plans)
    at_gap = [p for p in given if _gap(problem, p) == gap]
    known = [float(res.deadhead_km)] if res.deadhead_km is not None else []
    known += [_deadhead(problem, p) for p in at_gap]
    best = min(known, default=None)
    out = ExactReference(gap, ex.lower_bound, True, ex.status, ex.wall_s, min_dead, bound, best)
    judged = [p for p in plans if _gap(problem, p) == gap]
    if not late_capped or not judged:
        return out
    cap = max(_lateness(problem, p) for p in judged)
    capped_known = [_deadhead(problem, p) for p in judged]
    if res.deadhead_km is not None and (res.lateness_minutes or 0.0) <= cap + 1e-9:
        capped_known.append(float(res.deadhead_km))
        if min_dead is not None:
            # The deadhead-only minimum already keeps the cap: it is this one too.
            return _with_cap(out, cap, min_dead, min_dead, min_dead)
    lowest = min(capped_known)
    capped_hint = min(judged, key=lambda p: _deadhead(problem, p))
    res2 = exact.solve_lexicographic(
        problem,
        upstream,
        gap=gap,
        time_limit_s=time_limit_s,
        hint=capped_hint,
        workers=workers,
        max_lateness_minutes=cap,
    )
    if res2.deadhead_km is not None and (res2.lateness_minutes or 0.0) <= cap + 1e-6:
        lowest = min(lowest, float(res2.deadhead_km))
    capped_min = (
        float(res2.deadhead_km) if res2.proven_optimal and res2.deadhead_km is not None else None
    )
    # The capped minimum is at least the uncapped one, so either bound holds for it.
    lows = [b for b in (res2.lower_bound_km, bound) if b is not None and _positive(b)]
    capped_bound = min(max(lows), lowest) if lows else None
    return _with_cap(out, cap, capped_min, capped_bound, lowest)


def _with_cap(
    ref: ExactReference,
    cap: float,
    least: float | None,
    bound: float | None,
    best: float | None,
) -> ExactReference:
    return replace(
        ref,
        late_cap_minutes=cap,
        capped_min_deadhead_km=least,
        capped_bound_km=bound,
        capped_best_km=best,
    )


def _positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


def _gap(problem: Problem, plan: IntArray) -> int:
    return count_gap(np.bincount(plan[plan >= 0], minlength=problem.n_drivers))


def _deadhead(problem: Problem, plan: IntArray) -> float:
    return float(sum(s.deadhead_km for s in schedule_all(problem, plan)))


def _lateness(problem: Problem, plan: IntArray) -> float:
    return float(sum(s.lateness_minutes for s in schedule_all(problem, plan)))
