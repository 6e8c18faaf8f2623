"""`DQNPolicy`: the learned move policy the swap pass asks to rank candidates.

It implements `optimizer.swap_pass.MovePolicy`: one batched forward pass of the Q-network over
the candidates' feature rows, under `torch.inference_mode()`. The validator still decides; a
high Q-value only means "check me first".
"""

from __future__ import annotations

import numpy as np
import torch

from optimizer.dqn.features import candidate_features, shortlist
from optimizer.dqn.network import QNetwork
from optimizer.moves import Candidates
from optimizer.problem import FloatArray
from optimizer.swap_pass import SearchState

DEFAULT_SHORTLIST = 256
"""Most candidates the network scores per step (see `features.shortlist`)."""


class DQNPolicy:
    """Scores candidates with a trained `QNetwork`; `version` is the registry version."""

    def __init__(
        self, network: QNetwork, version: str, *, max_scored: int = DEFAULT_SHORTLIST
    ) -> None:
        self.network = network.eval()
        self._version = version
        self.max_scored = int(max_scored)

    @property
    def version(self) -> str:
        return self._version

    def q_values(self, state: SearchState, candidates: Candidates) -> FloatArray:
        """Q-values of every candidate (no shortlist), for analysis and tests."""
        feats = candidate_features(state, candidates)
        with torch.inference_mode():
            q = self.network(torch.from_numpy(feats)).numpy()
        out: FloatArray = q.astype(np.float64)
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
