"""The DQN move policy inside the real swap pass: same candidates as the env, safe outputs."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.dispatch import optimize_event
from optimizer.dqn.days import generated_days
from optimizer.dqn.policy import DQNPolicy
from optimizer.feasibility import is_feasible_change
from optimizer.generate import generate_day
from optimizer.moves import Candidates
from optimizer.policy import GreedyPolicy
from optimizer.registry import DEFAULT_MODEL_DIR, load_model
from optimizer.swap_pass import PassConfig, SearchState, pass_candidates, run_pass


@pytest.fixture(scope="module")
def shipped() -> DQNPolicy:
    """The model shipped in optimizer/models/default."""
    return load_model(DEFAULT_MODEL_DIR).policy()


class Recording(GreedyPolicy):
    def __init__(self) -> None:
        self.calls: list[Candidates] = []

    def score(self, state: SearchState, candidates: Candidates) -> np.ndarray:
        self.calls.append(candidates)
        return super().score(state, candidates)


def test_env_offers_the_candidates_the_pass_offers() -> None:
    """What `run_pass` hands its policy is the count-improving part of `pass_candidates`
    (the env's action set)."""
    for day in generated_days([(16, 4), (40, 6)], [11, 12]):
        rec = Recording()
        run_pass(day.problem, day.assignment, rec, PassConfig(max_swaps=1, swaps_per_booking=0))
        mine = pass_candidates(
            SearchState(day.problem, day.assignment),
            PassConfig(),
            chains=False,
            improving_only=True,
        )
        first = rec.calls[0]
        for field in ("kind", "b1", "src", "dst", "b2", "dst2", "gap_after"):
            np.testing.assert_array_equal(getattr(first, field), getattr(mine, field))


def test_shipped_model_output_is_feasible_and_never_worse(shipped: DQNPolicy) -> None:
    """On unseen days the DQN pass adds no violation and never raises the gap."""
    for day in generated_days([(18, 4), (60, 8)], range(900, 906)):
        r = run_pass(day.problem, day.assignment, shipped, PassConfig())
        ok, added = is_feasible_change(day.problem, day.assignment, r.assignment)
        assert ok, added
        assert PassConfig().objective.gain(r.before.value, r.after.value) >= 0
        assert r.policy_version == shipped.version


def test_scores_every_candidate_even_beyond_the_shortlist(shipped: DQNPolicy) -> None:
    """One score per candidate; shortlisted ones rank above the rest."""
    day = generated_days([(120, 15)], [5])[0]
    state = SearchState(day.problem, day.assignment)
    cands = state.candidates()
    small = DQNPolicy(shipped.network, "x", max_scored=40)
    scores = small.score(state, cands)
    assert scores.shape == (len(cands),) and np.isfinite(scores).all()
    top = np.sort(scores)[::-1]
    assert top[39] > top[40]


def test_optimized_event_names_the_model(shipped: DQNPolicy) -> None:
    """The Optimized event and every audit carry the serving model's version."""
    outcome = optimize_event(generate_day(12, 3, seed=31), shipped)
    assert outcome.optimized.model_version == shipped.version
    assert all(a.model_version == shipped.version for a in outcome.audits)


def test_count_then_q_ranks_by_count_gain_first_then_by_q(shipped: DQNPolicy) -> None:
    """`count_then_q`: a larger count gain always ranks higher; among equal gains, the order
    is the network's Q order."""
    day = generated_days([(40, 6)], [17])[0]
    state = SearchState(day.problem, day.assignment)
    cands = state.candidates()
    policy = DQNPolicy(shipped.network, "x", ranking="count_then_q")
    scores = policy.score(state, cands)
    gap, sq = state.value[0], state.value[1]
    gain = (gap - cands.gap_after) * 1e4 + (sq - cands.sq_after) * 10.0
    order = np.argsort(-scores, kind="stable")
    assert np.all(np.diff(gain[order]) <= 1e-9)  # count gain never increases down the list
    q = shipped.q_values(state, cands)
    top = gain == gain.max()
    within = order[top[order]]
    assert np.all(np.diff(q[within]) <= 1e-6)  # and Q decreases within the top class
    with pytest.raises(ValueError, match="unknown ranking"):
        DQNPolicy(shipped.network, "x", ranking="nope")
