"""Leaving the local optima of patient-transport days: ejection chains, the subset repair and
its optimality certificate."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from optimizer.ejection import ejection_chains
from optimizer.exact import solve_min_gap
from optimizer.feasibility import is_feasible_change
from optimizer.patient_transport import patient_days
from optimizer.policy import GreedyPolicy
from optimizer.repair import can_take_more, repair_moves, subsets
from optimizer.search_state import SearchState
from optimizer.swap_pass import PassConfig, replay, run_pass

WITHOUT = PassConfig(cost_phase=False, ejection_depth=0, repair_tries=())


def _stuck(size: tuple[int, int], seed: int, config: PassConfig = WITHOUT) -> SearchState:
    """The plan where a pass with `config` stops, with the input plan's deadlines."""
    day = patient_days([size], [seed])[0]
    result = run_pass(day.problem, day.assignment, GreedyPolicy(), config)
    deadline = SearchState(day.problem, day.assignment).deadline
    return SearchState(day.problem, result.assignment, deadline=deadline)


@pytest.mark.parametrize("seed", [3001001, 3001008, 3002005, 3003001])
def test_repair_reaches_the_proven_optimum_the_local_moves_miss(seed: int) -> None:
    """Patient days (25x4 .. 60x8) where moves, chains, exchanges and the lookahead stop above
    the proven optimal gap; with ejection chains and the subset repair the pass reaches it,
    feasible, never worse, its audit replaying to the output."""
    size = {3001: (25, 4), 3002: (40, 6), 3003: (60, 8)}[seed // 1000]
    day = patient_days([size], [seed])[0]
    p, upstream = day.problem, day.assignment
    before = run_pass(p, upstream, GreedyPolicy(), WITHOUT)
    after = run_pass(p, upstream, GreedyPolicy(), PassConfig(cost_phase=False))
    exact = solve_min_gap(p, upstream, time_limit_s=20, hint=after.assignment)
    assert exact.proven_optimal
    assert before.after.gap > exact.gap
    assert after.after.gap == exact.gap
    assert is_feasible_change(p, upstream, after.assignment)[0]
    assert PassConfig().objective.gain(after.before.value, after.after.value) >= 0
    assert np.array_equal(replay(upstream, [c.move for c in after.accepted]), after.assignment)
    assert after.stop_reason != "budget"


@pytest.mark.parametrize(
    ("size", "seed"),
    [((25, 4), s) for s in range(3001000, 3001010)]
    + [((40, 6), s) for s in range(3002000, 3002006)],
)
def test_the_certificate_never_claims_an_optimum_that_is_not(
    size: tuple[int, int], seed: int
) -> None:
    """`can_take_more` all false means no plan has better ride-count terms: wherever the exact
    solver finds a smaller gap than the stuck plan's, some driver can take a ride more."""
    state = _stuck(size, seed)
    exact = solve_min_gap(
        state.problem, patient_days([size], [seed])[0].assignment, time_limit_s=20
    )
    if exact.proven_optimal and exact.gap is not None and exact.gap < state.gap:
        assert can_take_more(state).any()
    if not can_take_more(state).any():
        assert exact.gap is not None and exact.gap >= state.gap


def test_ejection_chains_are_paths_that_lower_the_count_terms() -> None:
    """Every chain moves one ride out of its driver and one into another, every driver in it
    once, ends at least two rides apart, and its reported count terms are the plan's."""
    state = _stuck((60, 8), 3003002)
    gap, sq = state.value[0], state.value[1]
    found = ejection_chains(state, max_depth=4, limit=200)
    for chain in found:
        steps = chain.move.steps
        drivers = [s.from_driver for s in steps] + [steps[-1].to_driver]
        assert len(set(drivers)) == len(drivers)
        for a, b in pairwise(steps):
            assert a.to_driver == b.from_driver
        assert state.counts[drivers[0]] - state.counts[drivers[-1]] >= 2
        assert (chain.gap_after, chain.sq_after) < (gap, sq)
        trial = state.trial(chain.move)
        if trial.value is not None:
            assert trial.value[0] == chain.gap_after
            assert trial.value[1] == pytest.approx(chain.sq_after)


def test_repair_subsets_hold_distinct_drivers_and_a_receiver() -> None:
    """Each subset tried has `size` distinct drivers, one of which can take a ride more."""
    state = _stuck((100, 13), 3004000)
    more = can_take_more(state)
    for size in (3, 4, 5):
        for s in subsets(state, size):
            assert len(set(s)) == size
            assert any(more[d] for d in s)
    moves = repair_moves(state, tries=((3, 30), (4, 10), (5, 4)))
    for move in moves:  # whatever it proposes, the validator has the last word
        trial = state.trial(move)
        if trial.violation is None:
            assert trial.value is not None and trial.value[:2] < state.value[:2]


def test_a_pass_that_needs_no_repair_does_not_load_ortools() -> None:
    """The worker and `optimize` stay free of CP-SAT until a repair actually solves."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from optimizer.dqn.days import generated_days\n"
        "from optimizer.policy import GreedyPolicy\n"
        "from optimizer.swap_pass import run_pass\n"
        "for d in generated_days([(10, 3), (40, 6)], range(3)):\n"
        "    run_pass(d.problem, d.assignment, GreedyPolicy())\n"
        "print(any(m.startswith('ortools') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
