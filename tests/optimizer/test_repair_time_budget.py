"""The per-pass CP-SAT time budget (`PassConfig.repair_deterministic_budget`)."""

from __future__ import annotations

from optimizer.dqn.days import day_from_event
from optimizer.feasibility import is_feasible_change
from optimizer.policy import GreedyPolicy
from optimizer.solomon import solomon_day
from optimizer.swap_pass import PassConfig, run_pass


def test_a_pass_stops_re_planning_once_its_deterministic_time_is_spent(
    cpsat_solves: list[float],
) -> None:
    """A Solomon R101 day whose re-plans all fail: without a per-pass budget they spend about
    2.5 units; with one, the sum over the pass stays within it, the result as feasible and
    no worse; with none left no solve starts."""
    spent = cpsat_solves
    day = day_from_event(solomon_day("R101", 60, 8, 2), "solomon")
    unbounded = PassConfig(cost_phase=False, repair_deterministic_budget=10.0)
    run_pass(day.problem, day.assignment, GreedyPolicy(), unbounded)
    assert sum(spent) > 1.0, sum(spent)  # the case the budget is for

    spent.clear()
    config = PassConfig(cost_phase=False, repair_deterministic_budget=0.2)
    result = run_pass(day.problem, day.assignment, GreedyPolicy(), config)
    assert spent and sum(spent) <= 0.2 * 1.05 + 1e-3, sum(spent)
    assert result.after.gap <= result.before.gap
    assert is_feasible_change(day.problem, day.assignment, result.assignment)[0]

    spent.clear()
    none = PassConfig(cost_phase=False, repair_deterministic_budget=0.0)
    run_pass(day.problem, day.assignment, GreedyPolicy(), none)
    assert spent == []


def test_the_time_budget_is_deterministic() -> None:
    """Twice the same day and budget: the same plan and the same audit (no clock involved)."""
    day = day_from_event(solomon_day("R101", 60, 8, 2), "solomon")
    config = PassConfig(repair_deterministic_budget=0.1)
    a = run_pass(day.problem, day.assignment, GreedyPolicy(), config)
    b = run_pass(day.problem, day.assignment, GreedyPolicy(), config)
    assert a.assignment.tolist() == b.assignment.tolist()
    assert [(c.move, c.reason) for c in a.checked] == [(c.move, c.reason) for c in b.checked]
