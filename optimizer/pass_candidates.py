"""What the swap pass offers its policy: the candidates of a plan the objective could accept,
and the order in which the validator checks the best-ranked (`optimizer.swap_pass`
re-exports both; the DQN environment's action set is `pass_candidates` too)."""

from __future__ import annotations

import numpy as np

from optimizer.moves import CHAIN, Candidates, CountFilter
from optimizer.pass_config import PassConfig
from optimizer.problem import FloatArray, IntArray
from optimizer.search_state import SearchState

__all__ = ["pass_candidates", "top_order"]


def pass_candidates(
    state: SearchState,
    config: PassConfig,
    *,
    chains: bool,
    improving_only: bool = False,
    swap_window: int = 6,
) -> Candidates:
    """The candidates of this plan and phase that the objective could accept (the DQN env's
    action set); the pass hands its policy the `improving_only` part.

    Under the lexicographic objective a candidate that worsens the ride-count terms can never
    be accepted, so it is not offered. `improving_only` keeps only those that lower a
    ride-count term (gap, else squared deviation): the fairness phase takes only those, so each
    of its steps lowers the squared deviation by at least 2, which bounds the steps, and the
    later terms are left to the cost phase. The chain phase offers chains only.
    """
    lexicographic = config.objective.mode == "lexicographic"
    # The same filter as below, applied inside generation where it saves route arithmetic.
    wanted: CountFilter = (
        ("improving" if improving_only else "not_worse") if lexicographic else "any"
    )
    cands = state.candidates(
        chains=chains, balancing_only=lexicographic, swap_window=swap_window, keep=wanted
    )
    if lexicographic and len(cands):
        gap, sq = state.value[0], state.value[1]
        sq_ok = (cands.sq_after < sq - 1e-9) if improving_only else (cands.sq_after <= sq + 1e-9)
        keep = (cands.gap_after < gap) | ((cands.gap_after == gap) & sq_ok)
        if chains:
            keep &= cands.kind == CHAIN
        if not keep.all():  # (generation applied the same filter: usually all are kept)
            cands = cands.take(np.nonzero(keep)[0])
    return cands


def top_order(scores: FloatArray, limit: int) -> IntArray:
    """Indices of the `limit` best scores, best first (deterministic for the same scores)."""
    if len(scores) > limit:  # only the best few are checked: no full sort
        top = np.argpartition(-scores, limit - 1)[:limit]
        order: IntArray = top[np.argsort(-scores[top], kind="stable")]
        return order
    out: IntArray = np.argsort(-scores, kind="stable")
    return out
