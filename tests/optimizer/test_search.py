"""The search around the policy: no revisits, a stop reason, exchanges and the lookahead."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.dispatch import optimize_event
from optimizer.feasibility import is_feasible_change
from optimizer.generate import DayShape, generate_day
from optimizer.moves import Move, Step
from optimizer.objective import gap_floor
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem, Rules
from optimizer.search_state import plan_key
from optimizer.swap_pass import PassConfig, PassResult, Search, replay, run_pass

STOPS = {"target_reached", "no_improving_move", "budget", "time_limit"}


def _plans(upstream: np.ndarray, result: PassResult) -> list[bytes]:
    """The key of every plan the pass stood on, in order (input first)."""
    keys = [plan_key(upstream)]
    plan = upstream
    for c in result.accepted:
        plan = replay(plan, [c.move])
        keys.append(plan_key(plan))
    return keys


class _ReversePolicy:
    """Ranks candidates in reverse greedy order: a deliberately poor ranking."""

    version = "reverse"

    def score(self, state: object, candidates: object) -> np.ndarray:
        return -GreedyPolicy().score(state, candidates)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.sampled_from([(10, 3), (16, 4), (25, 4), (40, 6)]),
    seed=st.integers(0, 10_000),
    tolerance=st.sampled_from([0.0, 10.0]),
    reverse=st.booleans(),
)
def test_a_pass_never_returns_to_a_plan_and_always_says_why_it_stopped(
    size: tuple[int, int], seed: int, tolerance: float, reverse: bool
) -> None:
    """Distinct plans along the accepted moves; the stop reason agrees with the final gap."""
    event = generate_day(size[0], size[1], seed, shape=DayShape(locked=0.1, high_priority=0.3))
    problem, upstream = Problem.from_event(event, rules=Rules(late_tolerance_minutes=tolerance))
    policy = _ReversePolicy() if reverse else GreedyPolicy()
    result = run_pass(problem, upstream, policy)
    keys = _plans(upstream, result)
    assert len(set(keys)) == len(keys)
    assert result.stop_reason in STOPS
    floor = gap_floor(int((upstream >= 0).sum()), problem.n_drivers)
    if result.stop_reason == "target_reached":
        assert result.after.gap <= floor
    if result.stop_reason == "no_improving_move":
        assert result.after.gap > floor
    assert result.stop_reason != "budget"
    assert is_feasible_change(problem, upstream, result.assignment)[0]
    assert np.array_equal(replay(upstream, [c.move for c in result.accepted]), result.assignment)
    assert result.validator_checks == len(result.checked)


def test_same_input_same_pass() -> None:
    """Deterministic: the same day gives the same audit trail and plan, move by move."""
    problem, upstream = Problem.from_event(generate_day(40, 6, 11))
    a = run_pass(problem, upstream, GreedyPolicy())
    b = run_pass(problem, upstream, GreedyPolicy())
    assert np.array_equal(a.assignment, b.assignment)
    assert [(c.move, c.decision, c.reason) for c in a.checked] == [
        (c.move, c.decision, c.reason) for c in b.checked
    ]


def test_a_visited_plan_is_rejected_before_validation() -> None:
    """A candidate leading back to a plan in the visited set is audited as `revisit`."""
    problem, upstream = Problem.from_event(generate_day(10, 3, 1))
    search = Search(problem, upstream, GreedyPolicy(), PassConfig())
    b = int(np.flatnonzero((upstream >= 0) & ~problem.locked)[0])
    k = int(upstream[b])
    other = (k + 1) % problem.n_drivers
    there = upstream.copy()
    there[b] = other
    search.visited.add(plan_key(there))
    assert search.check(search.state, Move("move", (Step(b, k, other),)), 0.0) is None
    assert search.checked[-1].reason == "revisit"


def test_segment_exchange_reaches_an_optimum_single_moves_cannot() -> None:
    """10x3 seed 1000: three bookings must change drivers together to reach the proven gap 3."""
    problem, upstream = Problem.from_event(generate_day(10, 3, 1000))
    alone = PassConfig(ejection_depth=0, repair_tries=())  # the exchange on its own
    plain = run_pass(problem, upstream, GreedyPolicy(), replace(alone, exchanges=False))
    full = run_pass(problem, upstream, GreedyPolicy(), alone)
    assert plain.after.gap == 4 and plain.stop_reason == "no_improving_move"
    assert full.after.gap == 3  # the proven optimum (tests/optimizer/test_exact.py style)
    big = [c for c in full.accepted if len(c.move.steps) >= 3]
    assert big and big[0].move.kind == "compound"
    assert is_feasible_change(problem, upstream, full.assignment)[0]
    assert np.array_equal(replay(upstream, [c.move for c in full.accepted]), full.assignment)


def test_lookahead_takes_a_plateau_step_to_reach_the_optimum() -> None:
    """10x3 seed 16: a count-neutral step, then an improving one, reaches gap 0 (the floor)."""
    problem, upstream = Problem.from_event(generate_day(10, 3, 16))
    alone = PassConfig(cost_phase=False, ejection_depth=0, repair_tries=())  # the lookahead's own
    flat = run_pass(problem, upstream, GreedyPolicy(), replace(alone, lookahead_depth=0))
    deep = run_pass(problem, upstream, GreedyPolicy(), alone)
    assert flat.after.gap == 2
    assert deep.after.gap == 0 and deep.stop_reason == "target_reached"
    plateau = [c for c in deep.checked if "plateau" in c.detail]
    assert plateau  # explored plateau plans are audited
    assert deep.accepted[-1].move.kind == "compound"


def test_optimized_event_carries_the_stop_reason_and_compound_audits() -> None:
    """The wire: `Optimized.stop_reason` is set, audits list every step of a compound move."""
    outcome = optimize_event(generate_day(10, 3, 16), GreedyPolicy())
    assert outcome.optimized.stop_reason == "target_reached"
    compound = [a for a in outcome.audits if a.kind == "compound" and a.decision == "accepted"]
    assert compound and len(compound[0].steps) >= 3
