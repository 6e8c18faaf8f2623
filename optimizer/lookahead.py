"""The lookahead: when no single move, swap or chain improves, look a few steps further.

From the plan where the fairness phase is stuck, it takes "plateau" steps: moves and swaps that
keep every ride-count term (gap and squared deviation) and every hard constraint, ranked by the
pass's policy, keeping the best `lookahead_width` per plan, up to `lookahead_depth` deep. After
each plateau step it looks for an improving step that involves a driver the plateau steps
changed (only those can have become possible). The first success is accepted as one compound
move: its steps, in order, validated and audited as a unit against the plan the lookahead
started from. A swap plus a relocation (three bookings) is depth 1.

Plateau steps only touch drivers that could receive a ride (at least two below the fullest):
an improving step needs its receiving driver's route to change. Plans the lookahead explored
join the pass's visited set, so it never explores or returns to a plan twice. Its effort is
bounded by `lookahead_checks` validator checks, and all lookaheads of a pass by
`PassConfig.lookahead_work`; days above `PassConfig.lookahead_max_bookings` skip it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from optimizer.moves import CHAIN, Candidates, Move, Step
from optimizer.objective import Value
from optimizer.search_state import SearchState

if TYPE_CHECKING:
    from optimizer.swap_pass import Search

__all__ = ["lookahead"]

Path = tuple[Step, ...]


def lookahead(search: Search) -> int:
    """Find and accept one improving compound move; 1 when it did, else 0 (at once on days
    above `PassConfig.lookahead_max_bookings`)."""
    if int((search.state.assignment >= 0).sum()) > search.config.lookahead_max_bookings:
        return 0
    first = len(search.checked)
    try:
        return _lookahead(search, min(search.config.lookahead_checks, search.lookahead_left))
    finally:
        search.lookahead_left -= len(search.checked) - first


def _lookahead(search: Search, checks: int) -> int:
    cfg = search.config
    root = search.state
    v0 = root.value
    first = len(search.checked)

    def spent() -> bool:
        return len(search.checked) - first >= checks

    frontier: list[tuple[SearchState, Path]] = [(root, ())]
    for depth in range(cfg.lookahead_depth):
        next_frontier: list[tuple[SearchState, Path]] = []
        for state, path in frontier:
            for source in _plateau_sources(state, search):
                kept = 0
                for move, score in source:
                    if spent():
                        return 0
                    full = _compound(path, move)
                    if state.key_after(move) in search.visited:
                        search.record(full, score, None, v0, reason="revisit")
                        continue
                    trial = state.trial(move)
                    detail = f"plateau step {depth + 1} explored"
                    if trial.violation is not None:
                        search.record(full, score, trial, v0)
                        continue
                    assert trial.value is not None
                    if trial.value[:2] < v0[:2]:
                        # It lowers the ride-count terms after all (a segment exchange of the
                        # plateau list can): an improving step, judged as one.
                        if search.record(full, score, trial, v0) is not None:
                            child = state.fork()
                            child.apply(trial)
                            _adopt(search, child)
                            return 1
                        continue
                    # Count-neutral: not an improvement of the fairness phase, whatever it
                    # does to the later terms (those are the cost phase's).
                    search.record(full, score, trial, v0, reason="no_improvement", detail=detail)
                    child = state.fork()
                    child.apply(trial)
                    search.visited.add(child.key())
                    if _follow_up(search, child, full.steps, v0, spent):
                        return 1
                    next_frontier.append((child, full.steps))
                    kept += 1
                    if kept >= cfg.lookahead_width:
                        break
        frontier = next_frontier
        if not frontier:
            break
    return 0


def _plateau_sources(state: SearchState, search: Search) -> list[list[tuple[Move, float]]]:
    """Plateau steps from `state`, in two ranked lists: the policy's, then segment exchanges."""
    from optimizer.exchange import segment_exchanges
    from optimizer.pass_candidates import top_order

    out: list[list[tuple[Move, float]]] = []
    cands = _plateau(state)
    if len(cands):
        scores = np.asarray(search.policy.score(state, cands), dtype=float)
        ranked = top_order(scores, search.config.max_checks)
        out.append([(cands.move(int(i)), float(scores[i])) for i in ranked])
    if search.config.exchanges:
        receiver = state.counts <= state.counts.max() - 2
        found = segment_exchanges(
            state,
            max_rides=search.config.exchange_rides,
            neutral=True,
            limit=search.config.max_checks,
            drivers=receiver,
        )
        out.append([(e.move, 0.0) for e in found])
    return out


def _follow_up(
    search: Search, state: SearchState, path: Path, v0: Value, spent: Callable[[], bool]
) -> bool:
    """An improving step (a move or swap, else a chain) from a plateau plan, through a
    driver the plateau steps changed."""
    from optimizer.pass_candidates import pass_candidates

    # A lookup table instead of `np.isin` (its set-up dominates on a day's few candidates);
    # one extra False entry at the end answers a move's `dst2 = -1`.
    changed = np.zeros(state.problem.n_drivers + 1, dtype=bool)
    changed[[d for s in path for d in (s.from_driver, s.to_driver)]] = True
    for chains in (False, True) if search.config.chains else (False,):
        cands = pass_candidates(state, search.config, chains=chains, improving_only=True)
        involves = changed[cands.src] | changed[cands.dst]
        if chains:
            involves |= changed[cands.dst2]
        cands = cands.take(np.nonzero(involves)[0])
        if len(cands) and _try_follow_ups(search, state, cands, path, v0, spent):
            return True
    return False


def _try_follow_ups(
    search: Search,
    state: SearchState,
    cands: Candidates,
    path: Path,
    v0: Value,
    spent: Callable[[], bool],
) -> bool:
    from optimizer.pass_candidates import top_order

    scores = np.asarray(search.policy.score(state, cands), dtype=float)
    for i in top_order(scores, search.config.max_checks):
        if spent():
            return False
        move = cands.move(int(i))
        full = _compound(path, move)
        if state.key_after(move) in search.visited:
            search.record(full, float(scores[i]), None, v0, reason="revisit")
            continue
        trial = state.trial(move)
        if search.record(full, float(scores[i]), trial, v0) is not None:
            state.apply(trial)
            _adopt(search, state)
            return True
    return False


def _adopt(search: Search, state: SearchState) -> None:
    """Make `state` (reached by an accepted compound move) the pass's plan."""
    search.state = state
    search.visited.add(state.key())
    search.steps += 1


def _compound(path: Path, move: Move) -> Move:
    if not path:
        return move
    return Move("compound", path + move.steps)


def _plateau(state: SearchState) -> Candidates:
    """Moves and swaps that keep both ride-count terms and touch a possible receiver."""
    cands = state.candidates(balancing_only=True)
    if not len(cands):
        return cands
    gap, sq = state.value[0], state.value[1]
    counts = state.counts
    receiver = counts <= counts.max() - 2
    keep = (
        (cands.gap_after == gap)
        & (np.abs(cands.sq_after - sq) < 1e-9)
        & (cands.kind != CHAIN)
        & (receiver[cands.src] | receiver[cands.dst])
    )
    return cands.take(np.nonzero(keep)[0])
