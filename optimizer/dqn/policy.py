"""`DQNPolicy`: the learned move policy the swap pass asks to rank candidates.

It implements `optimizer.swap_pass.MovePolicy`: one batched forward pass of the Q-network over
the candidates' feature rows, in numpy (`optimizer.dqn.inference`), so serving never imports
torch. The validator still decides; a high Q-value only means "check me first".
"""

from __future__ import annotations

import numpy as np

from optimizer.dqn.features import candidate_features, shortlist
from optimizer.dqn.inference import MlpWeights
from optimizer.moves import Candidates
from optimizer.problem import FloatArray, IntArray
from optimizer.swap_pass import SearchState

DEFAULT_SHORTLIST = 256
"""Most candidates the network scores per step (see `features.shortlist`)."""
RANKINGS = ("q", "count_then_q")
"""`q`: candidates in Q-value order. `count_then_q`: by the exact change of the count terms
(gap, then squared deviation; what the greedy policy ranks by first), and within each class of
equal count gain by Q-value (where greedy uses the distance to the ride): the network decides
what the count arithmetic cannot tell apart."""


class DQNPolicy:
    """Scores candidates with trained `MlpWeights`; `version` is the registry version.

    A torch `QNetwork` is accepted too (it is converted once with `QNetwork.weights()`), so
    training code can score with the network it is training.
    """

    def __init__(
        self,
        network: MlpWeights | object,
        version: str,
        *,
        max_scored: int = DEFAULT_SHORTLIST,
        ranking: str = "q",
    ) -> None:
        if ranking not in RANKINGS:
            raise ValueError(f"unknown ranking {ranking!r}; one of {RANKINGS}")
        self.ranking = ranking
        if not isinstance(network, MlpWeights):
            export = getattr(network, "weights", None)
            if export is None:
                raise TypeError(f"need MlpWeights or a QNetwork, got {type(network).__name__}")
            network = export()
        assert isinstance(network, MlpWeights)
        self.network: MlpWeights = network
        self._version = version
        self.max_scored = int(max_scored)

    @property
    def version(self) -> str:
        return self._version

    def q_values(self, state: SearchState, candidates: Candidates) -> FloatArray:
        """Q-values of every candidate (no shortlist), for analysis and tests."""
        feats = candidate_features(state, candidates)
        out: FloatArray = self.network(feats).astype(np.float64)
        return out

    def score(self, state: SearchState, candidates: Candidates) -> FloatArray:
        n = len(candidates)
        if n == 0:
            return np.zeros(0)
        idx = shortlist(state, candidates, self.max_scored)
        q = self.q_values(state, candidates if len(idx) == n else candidates.take(idx))
        if self.ranking == "count_then_q":
            return _count_then_q(state, candidates, idx, q)
        if len(idx) == n:
            return q
        # Unscored candidates rank below every scored one (they are never reached in practice).
        scores = np.full(n, float(q.min()) - 1.0)
        scores[idx] = q
        return scores


def _count_then_q(
    state: SearchState, candidates: Candidates, idx: IntArray, q: FloatArray
) -> FloatArray:
    """Count gain (steps of at least 20) plus the Q-value's rank scaled into [0, 1)."""
    c = candidates
    gap, sq = state.value[0], state.value[1]
    gains: FloatArray = (gap - c.gap_after) * 1e4 + (sq - c.sq_after) * 10.0
    within = np.full(len(c), -1.0)  # unscored: below every scored one of the same class
    order = np.argsort(np.argsort(q, kind="stable"), kind="stable")
    within[idx] = order / max(len(q), 1)
    out: FloatArray = gains + within
    return out
