"""The Gymnasium environment: API contract, and that it drives the pass's own validator."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from optimizer.dqn.days import Day, generated_days, seed_days
from optimizer.dqn.env import DispatchEnv
from optimizer.dqn.features import FEATURE_NAMES, N_FEATURES, candidate_features
from optimizer.feasibility import is_feasible_change
from optimizer.swap_pass import PassConfig, SearchState, pass_candidates


@pytest.fixture(scope="module")
def days() -> list[Day]:
    """A few small generated days plus the seed day (module-scoped: building them costs ms)."""
    return [d for d in generated_days([(10, 3), (16, 4)], range(6)) if d.improvable] + seed_days()


def test_env_passes_gymnasium_checker(days: list[Day]) -> None:
    """`check_env` accepts the env (spaces, reset seeding, step 5-tuple, obs in space)."""
    check_env(DispatchEnv(days, max_actions=32), skip_render_check=True)


def test_reset_is_deterministic_for_a_seed(days: list[Day]) -> None:
    """The same seed picks the same day and gives the same observation."""
    env = DispatchEnv(days)
    a, info_a = env.reset(seed=7)
    b, info_b = env.reset(seed=7)
    assert info_a["day"] == info_b["day"]
    np.testing.assert_array_equal(a["candidates"], b["candidates"])
    np.testing.assert_array_equal(a["action_mask"], b["action_mask"])


def test_mask_marks_exactly_the_pass_candidates(days: list[Day]) -> None:
    """Legal rows are the pass's filtered candidates (the improving ones its fairness phase
    ranks), features equal, padding zero."""
    env = DispatchEnv(days, max_actions=256)
    obs, _ = env.reset(seed=0, options={"day": len(days) - 1})
    state = SearchState(days[-1].problem, days[-1].assignment)
    cands = pass_candidates(state, PassConfig(), chains=False, improving_only=True)
    n = len(cands)
    assert obs["action_mask"].sum() == n
    np.testing.assert_allclose(obs["candidates"][:n], candidate_features(state, cands))
    assert not obs["candidates"][n:].any()
    assert obs["candidates"].shape == (256, N_FEATURES) == (256, len(FEATURE_NAMES))


def test_rejected_and_masked_actions_are_penalised_and_change_nothing(days: list[Day]) -> None:
    """A masked action costs the reject penalty and leaves the plan as it was."""
    env = DispatchEnv(days, max_actions=64)
    obs, _ = env.reset(seed=1)
    before = env.assignment
    masked = int(np.flatnonzero(obs["action_mask"] == 0)[0])
    _, reward, terminated, _, info = env.step(masked)
    assert info["decision"] == "invalid"
    assert reward == pytest.approx(-env.rewards.reject_penalty)
    assert not terminated
    np.testing.assert_array_equal(env.assignment, before)


def test_random_episodes_stay_feasible_and_end(days: list[Day]) -> None:
    """Whatever the agent proposes, the validator keeps the plan feasible; episodes end."""
    env = DispatchEnv(days, max_proposals=80)
    rng = np.random.default_rng(0)
    for episode in range(8):
        obs, info = env.reset(seed=episode)
        upstream = env.day.assignment
        done, steps = not obs["action_mask"].any(), 0
        while not done:
            legal = np.flatnonzero(obs["action_mask"])
            obs, _, terminated, truncated, info = env.step(int(rng.choice(legal)))
            done = terminated or truncated
            steps += 1
            assert steps <= 80
        ok, added = is_feasible_change(env.day.problem, upstream, env.assignment)
        assert ok, added
        assert info["gap"] <= env.day.gap


def test_accepting_moves_pays_the_count_gain(days: list[Day]) -> None:
    """An accepted balancing move earns gap decrease + sq_weight x half the sq decrease."""
    env = DispatchEnv(days)
    env.reset(seed=0, options={"day": len(days) - 1})  # the seed day: 5/3/2
    gap0, sq0 = env.state.value[0], env.state.value[1]
    # Try candidates in the greedy order until one is accepted.
    for a in np.argsort(-obs_gain(env)):
        if not env.mask[a]:
            continue
        _, reward, _, _, info = env.step(int(a))
        if info["decision"] == "accepted":
            r = env.rewards
            expect = (gap0 - env.state.value[0]) + r.sq_weight * (sq0 - env.state.value[1]) / 2
            expect -= r.step_cost
            if info["gap"] <= info["floor"]:
                expect += r.target_bonus
            assert reward == pytest.approx(expect)
            return
    pytest.fail("no move accepted on the seed day")


def obs_gain(env: DispatchEnv) -> np.ndarray:
    col = FEATURE_NAMES.index("gain_sq")
    return env.features[:, col] + 10 * env.features[:, FEATURE_NAMES.index("gain_gap")]
