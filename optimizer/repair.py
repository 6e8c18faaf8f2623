"""Subset repair: when no move, chain, exchange or lookahead improves, re-plan three drivers
exactly.

On days with tight windows and a minority of wheelchair vans (the patient-transport held-out
days), a local optimum of the ride counts is often left only by re-planning a few drivers
together: three drivers trading five to nine rides at once, where every step in between is
infeasible. The exact solver's model (`optimizer.exact`, the same ride model and hard
constraints) restricted to the rides of three drivers finds such a re-plan in a few
milliseconds: the least sum of squared ride counts among those drivers (the others keep
theirs, so that is the pass's squared deviation), then the fewest rides moved, below the
current sum. It is a candidate like any other: the validator (`SearchState.trial`) checks it
against the lateness rule and every hard constraint on the whole plan, and the audit lists its
steps.

Which three: a fullest driver, one with at least two rides fewer, and a third whose rides lie
near both (mean empty km from each ride to the nearest ride of the other), fullest first, then
the biggest count difference, then the nearest; then four, five, nine drivers
(`PassConfig.repair_tries`: at most so many solves per size and stuck plan), each solve bounded
by a conflict count and CP-SAT's deterministic time (not wall time), so the pass stays
deterministic; all solves of a pass share one deterministic-time budget
(`PassConfig.repair_deterministic_budget`, in `WorkBudget`): days whose re-plans keep failing
stop paying for them.

Some days need more drivers at once than any subset holds (a full wheelchair van whose rides
only other vans can serve, each of which must pass a ride on: six or more drivers). On days
up to `PassConfig.whole_day_bookings` bookings the biggest subset size gives way to one
re-plan of every driver (`whole_day_move`) that asks only for a smaller gap. The CP-SAT
model itself is `optimizer.replan_model`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from optimizer.capacity import can_take_more, most, serves_at_least
from optimizer.moves import Move
from optimizer.problem import FloatArray
from optimizer.replan_model import ReplanModel
from optimizer.search_state import SearchState

__all__ = ["WorkBudget", "can_take_more", "repair_moves", "subsets", "whole_day_move"]


@dataclass(slots=True)
class WorkBudget:
    """CP-SAT model terms the re-plans of one pass may still build (`PassConfig.repair_work`)
    and CP-SAT deterministic time they may still spend
    (`PassConfig.repair_deterministic_budget`)."""

    left: int
    time_left: float = float("inf")

    def time_limit(self, per_solve: float) -> float:
        """The next solve's deterministic time limit: `per_solve`, or what is left if less
        (0: no solve may start)."""
        return max(0.0, min(per_solve, self.time_left))

    def spend_time(self, model: ReplanModel) -> None:
        """Count what `model`'s last solve took."""
        self.time_left -= model.deterministic_time

    def take(self, state: SearchState, drivers: Sequence[int]) -> bool:
        """Spend the cost of re-planning `drivers` (rides x rides x drivers / 2), if left."""
        rides = sum(len(state.routes[d]) for d in drivers)
        cost = rides * rides * len(drivers) // 2
        if cost > self.left:
            return False
        self.left -= cost
        return True

    def affords(self, state: SearchState, size: int) -> bool:
        """Whether the cheapest `size` drivers (fewest rides) could still be re-planned."""
        rides = sum(sorted(len(r) for r in state.routes)[:size])
        return rides * rides * size // 2 <= self.left


def repair_moves(
    state: SearchState,
    *,
    tries: tuple[tuple[int, int], ...] = ((3, 30), (4, 10), (5, 4)),
    conflicts: int = 20000,
    whole_day_bookings: int = 0,
    whole_day_conflicts: int = 20000,
    deterministic_time: float = 1.0,
    budget: WorkBudget | None = None,
) -> list[Move]:
    """A re-plan of a driver subset that lowers the squared ride-count deviation, or nothing.

    `tries`: (subset size, most solves) pairs, tried in order, the next only when the previous
    found nothing. Stops at the first re-plan found, or at the first solve `budget` cannot
    pay for. On a day with at most `whole_day_bookings` assigned bookings and more drivers
    than the smaller subsets hold, the last (biggest) entry gives way to one whole-day
    re-plan (`whole_day_move`). Every solve also stops at `deterministic_time` (CP-SAT's
    deterministic work units) or at the `budget`'s time left, and none starts when that is
    spent."""
    budget = budget or WorkBudget(1 << 62)
    k = state.problem.n_drivers
    if (
        not tries
        or not budget.affords(state, min(tries[0][0], k))
        or budget.time_limit(deterministic_time) <= 0
    ):
        return []  # not even the cheapest subset: skip choosing them (not free on big days)
    whole = (
        len(tries) > 1
        and 0 < int(state.counts.sum()) <= whole_day_bookings
        and max(size for size, _ in tries[:-1]) < k
    )
    for size, limit in tries[:-1] if whole else tries:
        size = min(size, k)
        tried = 0
        for drivers in subsets(state, size):
            if tried >= limit:
                break
            if not _may_improve(state, drivers):
                continue  # no receiver in it could take a ride more: a solve finds nothing
            if budget.time_limit(deterministic_time) <= 0 or not budget.take(state, drivers):
                return []
            tried += 1
            move = _repair(state, drivers, conflicts, deterministic_time, budget)
            if move is not None:
                return [move]
        if size >= k:
            return []  # that was the whole day
    if whole and budget.time_limit(deterministic_time) > 0 and budget.take(state, range(k)):
        move = whole_day_move(state, whole_day_conflicts, deterministic_time, budget)
        if move is not None:
            return [move]
    return []


def _may_improve(state: SearchState, drivers: tuple[int, ...]) -> bool:
    """Whether re-planning `drivers` alone could lower their squared deviation: some driver
    at least two below the fullest of them can serve one more of their rides."""
    c = state.counts[list(drivers)]
    among = np.isin(state.assignment, drivers)
    top = int(c.max())
    # Over every ride it may take first (cached for the plan by `can_take_more`): a driver
    # that cannot serve one more of those cannot among the subset's (fewer) rides either.
    return any(
        int(c[i]) <= top - 2
        and serves_at_least(state, g, int(c[i]) + 1)
        and serves_at_least(state, g, int(c[i]) + 1, among)
        for i, g in enumerate(drivers)
    )


def subsets(
    state: SearchState, size: int = 3, *, pairs: int = 24, pool: int = 6
) -> list[tuple[int, ...]]:
    """Driver subsets worth re-planning, most promising first (see the module docstring).

    Each holds a giver and a receiver at least two rides below it that can take one more
    (`can_take_more`); fullest givers first, then the biggest difference. The other members
    come from the `pool` drivers nearest to both; at most `pairs` (giver, receiver) pairs."""
    c = state.counts
    k = len(c)
    if k < 2:
        return []
    more = can_take_more(state)
    if k <= size:
        return [tuple(range(k))] if more.any() else []
    ends = [
        (-int(c[src]), int(c[sink]) - int(c[src]), src, sink)
        for src in range(k)
        for sink in np.nonzero(more)[0].tolist()
        if c[src] - c[sink] >= 2
    ]
    ends.sort()
    near = _nearness(state)
    movable = ~state.problem.locked
    takers = np.array(
        [
            state.solo[[b for b in state.routes[d] if movable[b]]].sum(axis=0)
            if state.routes[d]
            else np.zeros(k, dtype=np.int64)
            for d in range(k)
        ]
    )  # takers[a, b]: how many of a's movable rides b could serve alone
    ranked: list[tuple[tuple[int, int, float], tuple[int, ...]]] = []
    for neg_src, diff, src, sink in ends[:pairs]:
        closeness = near[src] + near[sink]
        closeness[[src, sink]] = np.inf
        # Members first by how many of the giver's rides they could serve at all (on days
        # with a few wheelchair vans, a full van's rides can only go to the other vans), then
        # by nearness.
        serve = takers[src]
        others = [d for d in np.lexsort((closeness, -serve)).tolist() if d not in (src, sink)]
        nearest = others[: max(pool, size - 2)]
        for mids in combinations(nearest, size - 2):
            key = (neg_src, diff, float(sum(closeness[m] for m in mids)))
            ranked.append((key, tuple(sorted((src, sink, *mids)))))
    ranked.sort()
    return list(dict.fromkeys(s for _, s in ranked))


def _nearness(state: SearchState) -> FloatArray:
    """(K, K): mean empty km from a ride of one route to the nearest ride of the other."""
    p = state.problem
    k = p.n_drivers
    km = p.travel.dropoff_to_pickup_km
    near = np.full((k, k), 1e9)
    busy = [d for d in range(k) if state.routes[d]]
    if not busy:
        return near
    flat = [b for d in busy for b in state.routes[d]]
    starts = np.cumsum([0] + [len(state.routes[d]) for d in busy[:-1]])
    for a in busy:
        # Each of a's rides to the nearest ride of every route at once; each route's mean
        # over a contiguous row (the same summation as a 1-D mean: same figures, same order).
        nearest = np.minimum.reduceat(km[np.ix_(state.routes[a], flat)], starts, axis=1)
        near[a, busy] = np.ascontiguousarray(nearest.T).mean(axis=1)
        near[a, a] = 1e9
    out: FloatArray = np.minimum(near, near.T)
    return out


def _repair(
    state: SearchState,
    drivers: tuple[int, ...],
    conflicts: int,
    deterministic_time: float = 1.0,
    budget: WorkBudget | None = None,
) -> Move | None:
    """The least-squares re-plan of `drivers` (fewest rides moved among equals), or None;
    the solve's deterministic time is taken from `budget`."""
    model = ReplanModel(state, drivers)
    if model.n < 2:
        return None
    m, n = model.m, model.n
    squares = []
    for k, count in enumerate(model.counts):
        sq = m.new_int_var(0, n * n, f"sq{k}")
        m.add_multiplication_equality(sq, [count, count])
        squares.append(sq)
    current = int((np.bincount(model.now, minlength=len(drivers)) ** 2).sum())
    m.add(sum(squares) <= current - 1)
    moved = sum(v for (i, k), v in model.x.items() if k != model.now[i])
    m.minimize(sum(squares) * (n + 1) + moved)
    return _solve(model, conflicts, deterministic_time, budget)


def _solve(
    model: ReplanModel,
    conflicts: int,
    deterministic_time: float,
    budget: WorkBudget | None,
    *,
    first_solution: bool = False,
) -> Move | None:
    """`model.solve` within `deterministic_time` and what `budget` has left; spends it."""
    if budget is None:
        return model.solve(
            conflicts, deterministic_time=deterministic_time, first_solution=first_solution
        )
    limit = budget.time_limit(deterministic_time)
    move = model.solve(conflicts, deterministic_time=limit, first_solution=first_solution)
    budget.spend_time(model)
    return move


def whole_day_move(
    state: SearchState,
    conflicts: int,
    deterministic_time: float = 1.0,
    budget: WorkBudget | None = None,
) -> Move | None:
    """A re-plan of every driver with a smaller ride-count gap, or None when CP-SAT finds none
    within `conflicts` and `deterministic_time` (and the time `budget` has left, if given).

    The last resort on days where the gap's bottleneck can only be relieved through many
    drivers at once (a full wheelchair van whose rides only other vans can serve, each of
    which must pass a ride on). Every count lies in a band [low, low + gap - 1] (`low` one of
    the few values that can hold all rides) and at most what the driver could serve alone
    (`_most`): tight bounds the solver propagates at once. The objective, fewest rides moved
    from the current plan (the hint), steers the search near it; the solve stops at the first
    plan found (the pass's local moves go on from there)."""
    p = state.problem
    k, n, target = p.n_drivers, int(state.counts.sum()), int(state.gap) - 1
    lows = [low for low in range(n // k, -1, -1) if n <= k * (low + target)]
    if target < 0 or not lows:
        return None
    from ortools.sat.python import cp_model

    model = ReplanModel(state, tuple(range(k)))
    if model.n < 2:
        return None
    m = model.m
    low = m.new_int_var_from_domain(cp_model.Domain.from_values(lows), "low")
    for g, count in enumerate(model.counts):
        m.add(count >= low)
        m.add(count <= low + target)
        m.add(count <= most(state, g, lows[0] + target))
    m.minimize(sum(v for (i, d), v in model.x.items() if d != model.now[i]))
    return _solve(model, conflicts, deterministic_time, budget, first_solution=True)
