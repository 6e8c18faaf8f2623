"""The exact CP-SAT baseline: never above the greedy pass, honest about what it proved."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.exact import solve_lexicographic, solve_min_gap
from optimizer.feasibility import is_feasible_change, schedule_all
from optimizer.generate import generate_day
from optimizer.objective import count_gap
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.swap_pass import run_pass
from tests.optimizer.conftest import booking, day, driver


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("size", [(10, 3), (24, 4), (40, 6)])
def test_exact_gap_never_above_greedy_and_greedy_excess_is_what_it_reports(
    size: tuple[int, int], seed: int
) -> None:
    """exact <= greedy, the exact plan is feasible, and greedy's reported gap is its real one."""
    problem, upstream = Problem.from_event(generate_day(size[0], size[1], seed))
    greedy = run_pass(problem, upstream, GreedyPolicy())
    exact = solve_min_gap(problem, upstream, time_limit_s=20)
    assert exact.gap is not None and exact.assignment is not None
    assert exact.verified
    assert is_feasible_change(problem, upstream, exact.assignment)[0]
    assert (
        count_gap(np.bincount(exact.assignment[exact.assignment >= 0], minlength=problem.n_drivers))
        == exact.gap
    )
    assert exact.lower_bound <= exact.gap
    real_greedy_gap = count_gap(
        np.bincount(greedy.assignment[greedy.assignment >= 0], minlength=problem.n_drivers)
    )
    assert real_greedy_gap == greedy.after.gap
    if exact.proven_optimal:
        assert exact.gap <= greedy.after.gap
        assert exact.gap == exact.lower_bound


def test_exact_proves_a_gap_above_the_floor_when_constraints_force_it() -> None:
    """Only k0 takes wheelchairs and all three rides need one: the optimum is gap 3, proven."""
    ev = day(
        [driver("k0", caps=("wheelchair",)), driver("k1")],
        [booking(f"b{i}", 400 + 60 * i, req=("wheelchair",)) for i in range(3)],
        {f"b{i}": "k0" for i in range(3)},
    )
    problem, upstream = Problem.from_event(ev)
    exact = solve_min_gap(problem, upstream, time_limit_s=10)
    assert exact.gap == 3 and exact.proven_optimal and exact.status == "OPTIMAL"
    greedy = run_pass(problem, upstream, GreedyPolicy())
    assert greedy.after.gap == 3


def test_exact_finds_a_chain_only_optimum() -> None:
    """b0 can only go to k1 and k1's ride only to k2: the optimum needs both moves."""
    ev = day(
        [driver("k0", caps=("wheelchair",)), driver("k1", caps=("wheelchair",)), driver("k2")],
        [
            booking("b0", 400, req=("wheelchair",)),
            booking("b1", 500, req=("wheelchair",)),
            booking("x", 450),
        ],
        {"b0": "k0", "b1": "k0", "x": "k1"},
    )
    problem, upstream = Problem.from_event(ev)
    exact = solve_min_gap(problem, upstream, time_limit_s=10)
    assert exact.gap == 0 and exact.proven_optimal
    greedy = run_pass(problem, upstream, GreedyPolicy())
    assert greedy.after.gap == 0  # reached through a chain (or move + move)


@pytest.mark.parametrize("seed", range(1000, 1006))
def test_lexicographic_exact_is_a_lower_bound_on_deadhead_at_the_optimal_gap(seed: int) -> None:
    """Least deadhead at the least gap: feasible, at that gap, and <= the pass's and the
    min-gap plan's deadhead whenever they reach the same gap."""
    problem, upstream = Problem.from_event(generate_day(10, 3, seed))
    greedy = run_pass(problem, upstream, GreedyPolicy())
    exact = solve_min_gap(problem, upstream, time_limit_s=20)
    assert exact.proven_optimal and exact.gap is not None and exact.assignment is not None
    lex = solve_lexicographic(problem, upstream, gap=exact.gap, time_limit_s=20)
    assert lex.proven_optimal and lex.verified and lex.assignment is not None
    assert lex.deadhead_km is not None
    counts = np.bincount(lex.assignment[lex.assignment >= 0], minlength=problem.n_drivers)
    assert count_gap(counts) == exact.gap
    assert is_feasible_change(problem, upstream, lex.assignment)[0]
    min_gap_km = sum(s.deadhead_km for s in schedule_all(problem, exact.assignment))
    assert lex.deadhead_km <= min_gap_km + 1e-3
    if greedy.after.gap == exact.gap:
        assert lex.deadhead_km <= greedy.after.deadhead_km + 1e-3
    # Without a gap given, it solves the gap first and agrees.
    again = solve_lexicographic(problem, upstream, time_limit_s=20)
    assert again.gap == exact.gap and again.deadhead_km == pytest.approx(lex.deadhead_km, abs=1e-3)
