"""Move policies: what the swap pass asks to rank candidates. The DQN lives in `optimizer.dqn`."""

from __future__ import annotations

import numpy as np

from optimizer.moves import CHAIN, Candidates
from optimizer.problem import FloatArray
from optimizer.swap_pass import SearchState

GREEDY_VERSION = "greedy-v2"


class GreedyPolicy:
    """Best improvement on ride-count fairness, then the shortest drive to the moved ride.

    Scores each candidate by the exact change of the count terms of the objective (gap, then
    squared deviation). Among equals it prefers the move whose new driver is closest to the
    ride (less empty driving: on generated days this roughly halves the deadhead the pass adds,
    at the same or a better gap), then work going from a busier to a less busy driver, then
    plain moves over chains.
    """

    version = GREEDY_VERSION
    tie_break_pool: int = 512
    """How many of the best candidates by count gain get the (costlier) distance tie-break."""

    def count_key(self, state: SearchState, candidates: Candidates) -> FloatArray:
        """The cheap part of the score: count gains, then workload transfer, then plain moves.

        Count gains move it in steps of at least 20; the tie-breaks stay below 1.
        """
        gap, sq = state.value[0], state.value[1]
        c = candidates
        w = state.workload
        load = (state.problem.service + state.problem.travel.ride)[c.b1]
        shift = (w[c.src] - w[c.dst]) * load / 1e6  # > 0 when work goes to the less busy one
        key: FloatArray = (gap - c.gap_after) * 1e4 + (sq - c.sq_after) * 10.0 + shift
        key -= np.where(c.kind == CHAIN, 1e-3, 0.0)
        return key

    def score(self, state: SearchState, candidates: Candidates) -> FloatArray:
        c = candidates
        score = self.count_key(state, c)
        if len(c) > self.tie_break_pool:
            pool = np.argpartition(-score, self.tie_break_pool - 1)[: self.tie_break_pool]
        else:
            pool = np.arange(len(c))
        skip = np.where(c.b2[pool] >= 0, c.b2[pool], -1)
        _, _, leg, _ = state.route_arrays().insertion(c.b1[pool], c.dst[pool], skip)
        penalty = np.full(len(c), 0.5)  # outside the pool: ranked after the pool's equals
        penalty[pool] = np.minimum(leg, 480.0) / 1e3
        score -= penalty
        return score
