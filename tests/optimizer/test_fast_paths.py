"""Cheaper ways to the same numbers: each fast path equals the plain computation it replaces."""

from __future__ import annotations

import math
import uuid

import numpy as np
import numpy.typing as npt

from optimizer.dispatch import _NAMESPACE, _uuid5, audit_event_id, optimized_event_id
from optimizer.dqn.days import generated_days
from optimizer.dqn.features import (
    _HIGH,
    _LOW,
    FEATURE_BOUND,
    N_FEATURES,
    _booking_features,
    candidate_features,
)
from optimizer.moves import CHAIN, MOVE, SWAP, Candidates, _pair_terms_small
from optimizer.objective import count_terms_after
from optimizer.policy import GreedyPolicy
from optimizer.swap_pass import PassConfig, SearchState, run_pass


def test_event_ids_are_uuid5() -> None:
    """The event ids are `uuid.uuid5` of the namespace and the name, character for character."""
    for name in ("", "a", "évènement/π", "x" * 300, "ev-1/optimized", "ev-1/audit/17"):
        assert _uuid5(name) == str(uuid.uuid5(_NAMESPACE, name))
    assert optimized_event_id("ev-1") == str(uuid.uuid5(_NAMESPACE, "ev-1/optimized"))
    assert audit_event_id("ev-1", 3) == str(uuid.uuid5(_NAMESPACE, "ev-1/audit/3"))


def _features_by_column(state: SearchState, c: Candidates) -> npt.NDArray[np.float32]:
    """The feature rows written one column at a time, with numpy's own mean and std (what
    `candidate_features` computed before it wrote blocks)."""
    n = len(c)
    out = np.zeros((n, N_FEATURES), dtype=np.float32)
    p, k = state.problem, state.problem.n_drivers
    counts = state.counts.astype(float)
    mean, std = float(counts.mean()), float(counts.std())
    gap, sq = float(state.value[0]), float(state.value[1])
    workload = state.workload
    w_mean = float(workload.mean())
    routes = state.route_arrays()
    cols: list[object] = []
    weekday = p.origin.weekday() if p.origin is not None else 0
    cols += [math.log1p(gap) / 3.0, std / 5.0, math.log1p(k) / 4.0, min(mean / 10.0, FEATURE_BOUND)]
    cols += [math.sin(2 * math.pi * weekday / 7), math.cos(2 * math.pi * weekday / 7)]
    kind, has2, scale = c.kind, c.b2 >= 0, 1.0 + std
    is_chain = kind == CHAIN
    end = np.where(is_chain, c.dst2, c.dst)
    full = (p.max_rides >= 0) & (state.counts >= p.max_rides)
    cols += [kind == MOVE, kind == SWAP, kind == CHAIN, gap - c.gap_after, (sq - c.sq_after) / 10.0]
    cols += [(counts[c.src] - mean) / scale, (counts[c.dst] - mean) / scale]
    cols += [is_chain * (counts[end] - mean) / scale, counts[c.src] == counts.max()]
    cols += [counts[end] == counts.min(), (kind != SWAP) & full[end]]
    cols += [(workload[c.src] - w_mean) / 120.0, (workload[c.dst] - w_mean) / 120.0]
    static = _booking_features(state)
    cols += list(static[c.b1].T)
    own, downstream, leg, _ = routes.insertion(c.b1, c.dst, np.where(has2, c.b2, -1))
    cols += [own / 60.0, downstream / 60.0, leg / 30.0, has2]
    b2 = np.where(has2, c.b2, 0)
    swap = kind == SWAP
    own, downstream, leg, _ = routes.insertion(
        b2, np.where(swap, c.src, end), np.where(swap, c.b1, -1)
    )
    cols += [has2 * static[:, -1][b2], has2 * (own / 60.0), has2 * (downstream / 60.0)]
    cols += [has2 * (leg / 30.0)]
    assert len(cols) == N_FEATURES
    for i, values in enumerate(cols):
        out[:, i] = values
    np.clip(out, _LOW, _HIGH, out=out)
    return out


class _Checking(GreedyPolicy):
    """Greedy ranking that compares both feature builds on every plan the pass ranks."""

    rows = 0

    def score(self, state: SearchState, candidates: Candidates) -> npt.NDArray[np.float64]:
        got, want = candidate_features(state, candidates), _features_by_column(state, candidates)
        assert got.dtype == want.dtype == np.float32
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # bit for bit
        _Checking.rows += len(candidates)
        return super().score(state, candidates)


def test_feature_blocks_equal_the_columns_bit_for_bit() -> None:
    """`candidate_features` writes the same float32 bits as a column-by-column build, on the
    plans of real passes (moves; swaps in the polish; chains; several fleet sizes)."""
    policy = _Checking()
    polish = PassConfig(polish_steps=4, batch_moves=False)
    for day in generated_days([(10, 3), (25, 4), (60, 8)], range(40, 46)):
        for config in (PassConfig(), polish):
            run_pass(day.problem, day.assignment, policy, config)
        state = SearchState(day.problem, day.assignment)
        for chains in (False, True):
            policy.score(state, state.candidates(chains=chains))
    assert _Checking.rows > 1000


def test_small_pair_terms_are_count_terms_after_and_read_only() -> None:
    """The cached small-fleet pair table is `count_terms_after` pair by pair, and frozen."""
    rng = np.random.default_rng(5)
    for _ in range(50):
        counts = rng.integers(0, 9, size=int(rng.integers(2, 9)))
        k = len(counts)
        g, s, _ = _pair_terms_small(tuple(counts.tolist()), "any", False)
        src, dst = np.repeat(np.arange(k), k), np.tile(np.arange(k), k)
        want_g, want_s = count_terms_after(counts.astype(np.int64), src, dst)
        assert np.array_equal(g.ravel(), want_g)
        assert np.array_equal(s.ravel(), want_s)
        assert not g.flags.writeable and not s.flags.writeable
