"""Move policies: what the swap pass asks to rank candidates. The DQN lives in `optimizer.dqn`."""

from __future__ import annotations

import numpy as np

from optimizer.moves import CHAIN, Candidates
from optimizer.problem import FloatArray
from optimizer.swap_pass import SearchState

GREEDY_VERSION = "greedy-v1"


class GreedyPolicy:
    """Best improvement on ride-count fairness, then on workload balance.

    Scores each candidate by the exact change of the count terms of the objective (gap, then
    squared deviation), breaking ties towards moving work from busier to less busy drivers and
    towards plain moves over chains (fewer changes for the same gain).
    """

    version = GREEDY_VERSION

    def score(self, state: SearchState, candidates: Candidates) -> FloatArray:
        gap, sq = state.value[0], state.value[1]
        c = candidates
        gain_gap = gap - c.gap_after
        gain_sq = sq - c.sq_after
        w = state.workload
        load = (state.problem.service + state.problem.travel.ride)[c.b1]
        shift = (w[c.src] - w[c.dst]) * load / 1e6  # > 0 when work goes to the less busy one
        chain_cost = np.where(c.kind == CHAIN, 1e-3, 0.0)
        score: FloatArray = gain_gap * 1e4 + gain_sq * 10.0 + shift - chain_cost
        return score
