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
from optimizer.problem import FloatArray
from optimizer.swap_pass import SearchState

DEFAULT_SHORTLIST = 256
"""Most candidates the network scores per step (see `features.shortlist`)."""


class DQNPolicy:
    """Scores candidates with trained `MlpWeights`; `version` is the registry version.

    A torch `QNetwork` is accepted too (it is converted once with `QNetwork.weights()`), so
    training code can score with the network it is training.
    """

    def __init__(
        self, network: MlpWeights | object, version: str, *, max_scored: int = DEFAULT_SHORTLIST
    ) -> None:
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
        if len(idx) == n:
            return self.q_values(state, candidates)
        q = self.q_values(state, candidates.take(idx))
        # Unscored candidates rank below every scored one (they are never reached in practice).
        scores = np.full(n, float(q.min()) - 1.0)
        scores[idx] = q
        return scores
