"""Candidate generation: the insertion mask loses no feasible move and drops infeasible ones."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.generate import generate_day
from optimizer.moves import Move, Step
from optimizer.problem import Problem
from optimizer.swap_pass import SearchState


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("size", [(20, 4), (60, 8)])
def test_insertion_mask_is_exact_for_single_moves(size: tuple[int, int], seed: int) -> None:
    """Every single-booking move the mask drops is rejected by the validator; every one it
    keeps adds no time-window, priority or shift violation (the mask is exact on time)."""
    problem, upstream = Problem.from_event(generate_day(size[0], size[1], seed))
    state = SearchState(problem, upstream)
    movable = (upstream >= 0) & ~problem.locked
    legal = state.solo & movable[:, None]
    legal[np.arange(problem.n_bookings), np.clip(upstream, 0, None)] = False
    b, k = np.nonzero(legal)
    fits = state.route_arrays().fits(b, k)
    assert fits.any() and (~fits).any()
    for bi, ki, ok in zip(b, k, fits, strict=True):
        trial = state.trial(Move("move", (Step(int(bi), int(upstream[bi]), int(ki)),)))
        if ok:  # may still break a driver's ride cap, never a time rule
            assert trial.violation in (None, "driver_limit"), (bi, ki, trial.violation)
        else:
            assert trial.violation is not None, (bi, ki)
