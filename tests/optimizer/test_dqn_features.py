"""Candidate features: fleet-size independent, bounded, and honest about insertion slack."""

from __future__ import annotations

import numpy as np

from optimizer.dqn.days import generated_days, seed_days
from optimizer.dqn.features import (
    FEATURE_BOUND,
    FEATURE_NAMES,
    N_FEATURES,
    candidate_features,
    shortlist,
)
from optimizer.swap_pass import SearchState


def test_rows_have_one_width_for_any_fleet() -> None:
    """A 10x3 and a 120x15 day give rows of the same width, finite and within bounds."""
    for day in generated_days([(10, 3), (120, 15)], [3, 4]):
        state = SearchState(day.problem, day.assignment)
        for chains in (False, True):
            f = candidate_features(state, state.candidates(chains=chains))
            assert f.shape[1] == N_FEATURES
            assert f.dtype == np.float32
            assert np.isfinite(f).all()
            assert (np.abs(f) <= FEATURE_BOUND).all()


def test_gain_columns_match_the_generator() -> None:
    """`gain_gap` / `gain_sq` are the generator's exact count changes, scaled."""
    day = seed_days()[0]
    state = SearchState(day.problem, day.assignment)
    c = state.candidates()
    f = candidate_features(state, c)
    gap, sq = state.value[0], state.value[1]
    np.testing.assert_allclose(
        f[:, FEATURE_NAMES.index("gain_gap")], np.clip(gap - c.gap_after, -2, 2)
    )
    np.testing.assert_allclose(
        f[:, FEATURE_NAMES.index("gain_sq")], np.clip((sq - c.sq_after) / 10, -2, 2), rtol=1e-6
    )


def test_offered_plain_moves_have_non_negative_insertion_slack() -> None:
    """The features' insertion estimate agrees with the candidate mask: no offered plain move
    starts with a negative pickup slack (the mask drops those, see tests/optimizer/test_moves)."""
    offered = 0
    for day in generated_days([(30, 5)], range(5)):
        state = SearchState(day.problem, day.assignment)
        c = state.candidates()
        f = candidate_features(state, c)
        col = FEATURE_NAMES.index("b1_pickup_slack")
        plain = c.kind == 0
        offered += int(plain.sum())
        late = state.route_arrays().late_ok[c.b1[plain]]
        assert (f[plain, col][~late] >= -1e-6).all()
    assert offered > 0


def test_shortlist_keeps_all_small_sets_and_the_best_of_large_ones() -> None:
    """Below the limit every candidate stays; above it, the top of the greedy key."""
    day = generated_days([(120, 15)], [9])[0]
    state = SearchState(day.problem, day.assignment)
    c = state.candidates()
    assert len(shortlist(state, c, len(c) + 1)) == len(c)
    idx = shortlist(state, c, 50)
    assert len(idx) == 50 and (np.diff(idx) > 0).all()
