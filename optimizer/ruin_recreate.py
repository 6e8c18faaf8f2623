"""Ruin and recreate for km: related drivers' rides handed out again, many times, annealed.

The cost phase's moves change one to five rides at once and its km re-plans (`km_repair`)
re-plan the subsets of 3 and 5 drivers whose days meet most, each accepted only when it
saves: both stop at a local optimum. On big days a cheaper plan at the same ride counts is
often several such re-plans away, with the plans in between dearer (an offline search over
driver subsets finds plans 9-15 % below the pass's at 100x13, `optimizer.deadhead_lns`).
This phase walks there, in the spirit of SISR (Christiaens & Vanden Berghe, "Slack
Induction by String Removals"), on a working copy of the plan; each round:

- ruin: a random ride (the seed) and the drivers of the rides most related to it (close in
  time and space: how far apart their windows open plus the shorter empty leg between them,
  `_related`), the first 3 or 4 distinct ones (`PassConfig.rr_sizes`): their rides are the
  ones taken out (locked rides stay with their driver);
- recreate: the km re-plan's beam (`km_repair.km_replan`) hands them out again with the ride
  model's own times, every hard constraint (capability, per-booking deadline, shift, ride
  cap), the day's gap and a squared count deviation no worse;
- accept (simulated annealing): the working plan takes the cheapest plan the beam found
  when it lowers the operating cost (`Objective.cost`), or, when this round draws a slack
  `worse` (exponential, mean the temperature, which cools from `rr_temperature`'s first
  value to its second), the cheapest plan other than the working one that is at most `worse`
  dearer; the working plan's validator (`SearchState.trial`) checks each one first.

An improving round on a subset whose routes are as they were when an improving round last
re-planned it is skipped (the same routes give the same answer). The cheapest plan seen is
handed to the pass's validator (`Search.check`) as one compound move from the pass's plan,
like a km re-plan: audited, accepted only when it lowers the operating cost by
`min_improvement` at ride-count terms no worse, so the pass's invariant holds by
construction. The effort is deterministic: at most `rr_iterations` rounds and `rr_work` beam
work (`km_replan_work`'s units), random numbers from a generator seeded with `rr_seed`: the
same input gives the same plan on any machine. Measured in `bench/ruin_recreate.py`.

SISR's own recreate, cheapest insertion ride by ride (`RouteArrays.insertion_km` and
`fits_mask`, with blinks), was tried first and not kept: at 100x13, 1,000 rounds (~0.5 s)
from the pass's plan cut deadhead by only 0.1-1.5 %, as most recreated plans were 20 km
dearer and 30-50 % of recreates found no feasible slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from optimizer.km_repair import BOUND_COST, REPLAN_COST, km_bound, km_replan
from optimizer.moves import Move, Step
from optimizer.pass_config import PassConfig
from optimizer.problem import IntArray, Problem
from optimizer.search_state import SearchState

if TYPE_CHECKING:
    from optimizer.swap_pass import Search

__all__ = ["rr_search", "ruin_recreate"]


def ruin_recreate(search: Search) -> int:
    """Run the phase on `search`'s plan; 1 when the validator accepted its best plan, else 0."""
    cfg = search.config
    state = search.state
    iterations = cfg.rr_budget(int((state.assignment >= 0).sum()), state.problem.n_drivers)
    if iterations <= 0:
        return 0
    best = rr_search(state, cfg, iterations, search.out_of_time)
    if best is None:
        return 0
    steps = tuple(
        Step(int(b), int(state.assignment[b]), int(best[b]))
        for b in np.nonzero(best != state.assignment)[0]
    )
    trial = search.check(state, Move("compound", steps), 0.0)
    if trial is None:
        return 0
    search.accept(trial)
    return 1


def rr_search(
    state: SearchState,
    cfg: PassConfig,
    iterations: int,
    stop: Callable[[], bool] | None = None,
) -> IntArray | None:
    """The cheapest plan (an assignment) `iterations` rounds of ruin and recreate find from
    `state` (not modified), when it costs at least `cfg.min_improvement` less; else None."""
    p = state.problem
    movable = np.nonzero((state.assignment >= 0) & ~p.locked)[0]
    if len(movable) < 2 or p.n_drivers < 2:
        return None
    objective = cfg.objective
    rng = np.random.default_rng(cfg.rr_seed)
    related = _related(p)
    sizes = [min(s, p.n_drivers) for s in cfg.rr_sizes]
    work = state.fork()
    start = now = objective.cost(state.value)
    best, best_cost = None, start
    tried: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {}
    total = budget = float(cfg.rr_work)
    t_hi, t_lo = cfg.rr_temperature
    for _ in range(iterations):
        if budget <= 0 or (stop is not None and stop()):
            break
        # Annealing: this round may take a plan up to `worse` dearer (exponential, mean the
        # temperature, which cools geometrically as the work budget is spent).
        temperature = t_hi * (t_lo / t_hi) ** (1.0 - budget / total) if t_hi > 0 < t_lo else 0.0
        worse = -temperature * float(np.log(1.0 - rng.random()))
        seed = int(movable[rng.integers(len(movable))])
        drivers = _neighbourhood(work, related[seed], sizes[int(rng.integers(len(sizes)))])
        if len(drivers) < 2:
            continue
        if worse <= cfg.min_improvement:  # an improving round
            worse = 0.0
            sig = tuple(tuple(work.routes[d]) for d in drivers)
            if tried.get(drivers) == sig:
                continue  # the same routes gave nothing cheaper before
            tried[drivers] = sig
            budget -= BOUND_COST
            if km_bound(work, drivers, objective) < cfg.min_improvement:
                continue
        saving = cfg.min_improvement if worse == 0 else 0.0
        move, effort = km_replan(work, drivers, objective, cfg.rr_width, saving, worse)
        budget -= REPLAN_COST + effort
        if move is None:
            continue
        trial = work.trial(move)
        if trial.value is None or trial.violation is not None:
            continue
        before, after = work.value, trial.value
        if after[0] > before[0] or after[1] > before[1] + 1e-9 * max(1.0, before[1]):
            continue  # the beam keeps both; the validator's figures have the last word
        cost = objective.cost(trial.value)
        if cost < now - cfg.min_improvement or (worse > 0 and cost < now + worse):
            work.apply(trial)
            now = cost
            if cost < best_cost:
                best, best_cost = work.assignment.copy(), cost
    if best is None or best_cost > start - cfg.min_improvement:
        return None
    return best


def _related(p: Problem) -> IntArray:
    """(N, N): per booking, every booking from most to least related (itself first).

    Relatedness of a and b, in minutes: how far apart their windows open plus the shorter
    empty leg between them (either way). Rides that can take each other's place in a route
    are close on both (kept on the problem: it never changes)."""
    return p.memo("rr_related", _build_related)


def _build_related(p: Problem) -> IntArray:
    legs = p.travel.dropoff_to_pickup
    apart = np.abs(p.earliest[:, None] - p.earliest[None, :]) + np.minimum(legs, legs.T)
    np.fill_diagonal(apart, -1.0)
    out: IntArray = np.argsort(apart, axis=1, kind="stable")
    return out


def _neighbourhood(work: SearchState, related: IntArray, size: int) -> tuple[int, ...]:
    """The drivers of the rides most related to a seed ride (`related`: its row of
    `_related`), the first `size` distinct ones, ascending."""
    chosen: set[int] = set()
    for d in work.assignment[related].tolist():
        if d >= 0 and d not in chosen:
            chosen.add(d)
            if len(chosen) == size:
                break
    return tuple(sorted(chosen))
