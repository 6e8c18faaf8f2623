"""The whole-day re-plan: the last resort of the subset repair on days up to
`PassConfig.whole_day_bookings` bookings."""

from __future__ import annotations

import dataclasses

import numpy as np

from optimizer.exact import solve_min_gap
from optimizer.feasibility import is_feasible_change
from optimizer.patient_transport import patient_days
from optimizer.policy import GreedyPolicy
from optimizer.repair import WorkBudget, whole_day_move
from optimizer.search_state import SearchState
from optimizer.swap_pass import PassConfig, replay, run_pass

# A patient 100x13 day (seed from the previous session's fresh check, not the reported set):
# a full wheelchair van's rides leave only through five drivers at once, which no subset of
# the sizes tried contains.
SEED = 7104007
NO_WHOLE_DAY = PassConfig(cost_phase=False, whole_day_bookings=0)


def test_the_whole_day_re_plan_reaches_the_optimum_the_subsets_miss() -> None:
    """Without it the pass stops above the proven optimal gap; with it the pass reaches it,
    feasible, never worse, its audit replaying to the output, the re-plan audited as one
    accepted compound move."""
    day = patient_days([(100, 13)], [SEED])[0]
    p, upstream = day.problem, day.assignment
    without = run_pass(p, upstream, GreedyPolicy(), NO_WHOLE_DAY)
    with_it = run_pass(p, upstream, GreedyPolicy(), PassConfig(cost_phase=False))
    exact = solve_min_gap(p, upstream, time_limit_s=30, hint=with_it.assignment)
    assert exact.proven_optimal and exact.gap is not None
    assert without.after.gap > exact.gap
    assert with_it.after.gap == exact.gap
    assert is_feasible_change(p, upstream, with_it.assignment)[0]
    assert PassConfig().objective.gain(with_it.before.value, with_it.after.value) >= 0
    moves = [c.move for c in with_it.accepted]
    assert np.array_equal(replay(upstream, moves), with_it.assignment)
    assert any(len(m.steps) >= 5 for m in moves)


def test_the_whole_day_re_plan_is_deterministic_and_only_lowers_the_gap() -> None:
    """Twice on the same stuck plan: the same move; it lowers the gap and the validator
    accepts it. On a plan whose gap is already optimal it finds nothing."""
    day = patient_days([(100, 13)], [SEED])[0]
    stuck = run_pass(day.problem, day.assignment, GreedyPolicy(), NO_WHOLE_DAY)
    deadline = SearchState(day.problem, day.assignment).deadline
    state = SearchState(day.problem, stuck.assignment, deadline=deadline)
    first, again = whole_day_move(state, 20000), whole_day_move(state, 20000)
    assert first is not None and first == again
    trial = state.trial(first)
    assert trial.violation is None and trial.value is not None
    assert trial.value[0] < state.gap
    state.apply(trial)
    best = solve_min_gap(day.problem, day.assignment, time_limit_s=30, hint=state.assignment)
    if best.proven_optimal and best.gap == state.gap:
        assert whole_day_move(state, 20000) is None


def test_the_whole_day_re_plan_is_off_above_its_size() -> None:
    """Days above `whole_day_bookings` never get it (their repair keeps its subset sizes)."""
    day = patient_days([(100, 13)], [SEED])[0]
    small = dataclasses.replace(NO_WHOLE_DAY, whole_day_bookings=50)
    a = run_pass(day.problem, day.assignment, GreedyPolicy(), small)
    b = run_pass(day.problem, day.assignment, GreedyPolicy(), NO_WHOLE_DAY)
    assert np.array_equal(a.assignment, b.assignment)
    assert a.after.gap == b.after.gap


def test_the_repair_work_budget_bounds_the_re_plans() -> None:
    """With no repair work left the pass ends where a pass without re-plans ends; the budget
    falls steeply above `work_bookings` (deterministic: no clock involved)."""
    day = patient_days([(100, 13)], [SEED])[0]
    broke = dataclasses.replace(NO_WHOLE_DAY, whole_day_bookings=120, repair_work=0)
    none = dataclasses.replace(NO_WHOLE_DAY, repair_tries=())
    a = run_pass(day.problem, day.assignment, GreedyPolicy(), broke)
    b = run_pass(day.problem, day.assignment, GreedyPolicy(), none)
    assert np.array_equal(a.assignment, b.assignment)
    cfg = PassConfig()
    assert cfg.repair_budget(10) == cfg.repair_budget(100) == cfg.repair_work
    assert cfg.repair_budget(300) == cfg.repair_work // 243
    assert cfg.lookahead_budget(50) == cfg.lookahead_work
    assert cfg.lookahead_budget(300) == cfg.lookahead_work // 243
    budget = WorkBudget(1000)
    state = SearchState(day.problem, day.assignment)
    big = max(range(13), key=lambda d: len(state.routes[d]))
    rides = len(state.routes[big])
    assert budget.take(state, [big]) == (rides * rides // 2 <= 1000)


def test_every_re_plan_stops_at_its_deterministic_time(cpsat_solves: list[float]) -> None:
    """A Solomon R101 day (not from our generators) whose whole-day re-plan propagates long
    between conflicts: it ran 12 s of CPU to the conflict limit. Each solve now stops at
    `repair_deterministic_time` of CP-SAT's own (machine-independent) work units."""
    from optimizer.dqn.days import day_from_event
    from optimizer.solomon import solomon_day

    spent = cpsat_solves
    day = day_from_event(solomon_day("R101", 60, 8, 2), "solomon")
    config = PassConfig(cost_phase=False, repair_deterministic_time=0.5)
    result = run_pass(day.problem, day.assignment, GreedyPolicy(), config)
    assert spent and max(spent) <= 0.5 * 1.05, max(spent)
    assert result.after.gap <= result.before.gap
    assert is_feasible_change(day.problem, day.assignment, result.assignment)[0]
