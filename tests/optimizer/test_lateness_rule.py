"""The lateness rule: no accepted move makes a booking later than max(input lateness, tolerance)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.feasibility import is_feasible_change, later_than_allowed, schedule_all
from optimizer.generate import DayShape, generate_day
from optimizer.moves import Move, Step
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem, Rules
from optimizer.search_state import SearchState
from optimizer.swap_pass import replay, run_pass
from schemas import HeuristicDone
from tests.optimizer.conftest import booking, driver

FAR = (46.2044, 6.5432)  # ~40 road-km east of the rides: about 80 minutes away


def _late_minutes(problem: Problem, assignment: np.ndarray) -> np.ndarray:
    out = np.zeros(problem.n_bookings)
    for s in schedule_all(problem, assignment):
        for b, p in zip(s.bookings, s.pickup_at, strict=True):
            out[b] = max(0.0, p - problem.latest[b])
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.sampled_from([(10, 3), (16, 4), (25, 4), (40, 6)]),
    seed=st.integers(0, 10_000),
    tolerance=st.sampled_from([0.0, 5.0, 10.0]),
    locked=st.sampled_from([0.0, 0.15]),
    urgent=st.sampled_from([0.1, 0.4]),
)
def test_no_booking_gets_later_than_its_input_lateness_or_the_tolerance(
    size: tuple[int, int], seed: int, tolerance: float, locked: float, urgent: float
) -> None:
    """Per booking, in minutes: lateness after <= max(lateness before, tolerance)."""
    shape = DayShape(locked=locked, high_priority=urgent)
    event = generate_day(size[0], size[1], seed, shape=shape)
    # The generator plans with a 10-minute tolerance; reading the day with less makes some
    # bookings late in the input plan, which is what the rule is about.
    problem, upstream = Problem.from_event(event, rules=Rules(late_tolerance_minutes=tolerance))
    result = run_pass(problem, upstream, GreedyPolicy())
    before = _late_minutes(problem, upstream)
    after = _late_minutes(problem, result.assignment)
    allowed = np.maximum(before, problem.tolerance)
    assert np.all(after <= allowed + 1e-6), np.nonzero(after > allowed + 1e-6)
    assert not later_than_allowed(problem, upstream, result.assignment)
    assert is_feasible_change(problem, upstream, result.assignment)[0]
    assert np.array_equal(result.assignment[problem.locked], upstream[problem.locked])


def _late_day(make_day: Callable[..., HeuristicDone], *, priority: int) -> HeuristicDone:
    """Driver a holds three rides, the last 0.8 min late; b is 80 minutes away.

    r1 and r2 are locked, so the one count-improving move is L: a -> b, which would make L
    about an hour late.
    """
    return make_day(
        [driver("a"), driver("b", where=FAR)],
        [
            booking("r1", 360, 380, locked=True),
            booking("r2", 370, 390, locked=True),
            booking("L", 375, 380, priority=priority),
        ],
        {"r1": "a", "r2": "a", "L": "a"},
    )


def test_an_already_late_booking_is_not_made_later_by_an_improving_move(
    make_day: Callable[..., HeuristicDone],
) -> None:
    """Regression: 'violations 1 -> 1' once let a booking go from 1 to 69 minutes late."""
    for priority, reason in ((0, "time_window"), (1, "priority")):
        problem, upstream = Problem.from_event(
            _late_day(make_day, priority=priority), rules=Rules(late_tolerance_minutes=0.0)
        )
        late_in = _late_minutes(problem, upstream)
        assert 0.1 < late_in[2] < 2.0  # L is already a little late upstream
        state = SearchState(problem, upstream)
        move = Move("move", (Step(2, 0, 1),))  # L: a -> b, the gap would go 3 -> 1
        trial = state.trial(move)
        assert trial.violation == reason
        assert trial.detail.startswith("L would be") and "min late" in trial.detail
        assert not is_feasible_change(problem, upstream, replay(upstream, [move]))[0]
        # The pass as a whole: nothing may move (r1, r2 are locked, L may not get later).
        result = run_pass(problem, upstream, GreedyPolicy())
        assert np.array_equal(result.assignment, upstream)
        assert result.stop_reason == "no_improving_move"


def test_the_independent_check_keeps_input_lateness_and_flags_new_lateness(
    make_day: Callable[..., HeuristicDone],
) -> None:
    """`later_than_allowed` lets L stay 0.8 min late but flags r2 made late on b."""
    problem, upstream = Problem.from_event(
        _late_day(make_day, priority=0), rules=Rules(late_tolerance_minutes=0.0)
    )
    moved = upstream.copy()
    moved[1] = 1  # r2 to b: L gets earlier on a, r2 is late on b
    assert later_than_allowed(problem, upstream, moved) == {1}
    assert not later_than_allowed(problem, upstream, upstream)
