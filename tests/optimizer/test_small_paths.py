"""Row-by-row paths for a few candidates give the vectorised paths' numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

import optimizer.dqn.features as features
from optimizer.dqn.days import generated_days
from optimizer.moves import Candidates
from optimizer.policy import GreedyPolicy
from optimizer.swap_pass import PassConfig, SearchState, run_pass


class _Both(GreedyPolicy):
    """Greedy ranking that builds every plan's features both ways and keeps both."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.pairs: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = []

    def score(self, state: SearchState, candidates: Candidates) -> npt.NDArray[np.float64]:
        with self.monkeypatch.context() as m:
            m.setattr(features, "compiled", None)  # the Python builds (test_kernels: the C)
            small = features.candidate_features(state, candidates)
            m.setattr(features, "_SMALL", -1)  # the vectorised build, whatever the size
            vector = features.candidate_features(state, candidates)
        self.pairs.append((small, vector))
        return super().score(state, candidates)


def test_small_feature_rows_equal_the_vectorised_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the plans of real passes (moves, swaps in the polish, chains, late and locked rides)
    the row-by-row features equal the vectorised ones in every float32 bit."""
    policy = _Both(monkeypatch)
    polish = PassConfig(polish_steps=4, batch_moves=False)
    for day in generated_days([(10, 3), (12, 4), (25, 4)], range(60, 70)):
        for config in (PassConfig(), polish):
            run_pass(day.problem, day.assignment, policy, config)
        state = SearchState(day.problem, day.assignment)
        for chains in (False, True):
            policy.score(state, state.candidates(chains=chains))
    small_rows = sum(len(s) for s, _ in policy.pairs if 0 < len(s) <= features._SMALL)
    kinds = {len(s) > features._SMALL for s, _ in policy.pairs}
    assert small_rows > 500 and kinds == {False, True}  # both paths ran
    for small, vector in policy.pairs:
        assert small.dtype == vector.dtype == np.float32 and small.shape == vector.shape
        assert np.array_equal(small.view(np.uint32), vector.view(np.uint32))


def test_a_changed_row_is_caught() -> None:
    """The bit comparison above sees a difference of one ulp (it can fail)."""
    a = np.array([[1.0, 2.0]], dtype=np.float32)
    b = a.copy()
    b[0, 1] = np.nextafter(b[0, 1], np.float32(3.0))
    assert not np.array_equal(a.view(np.uint32), b.view(np.uint32))
