"""The cost phase: at the ride counts fairness reached, cut empty driving and lateness.

After the fairness phase, relocations, swaps and segment exchanges that keep both ride-count
terms (gap and squared deviation) are ranked by the empty kilometres they are estimated to
save (`RouteArrays.km_removal` / `km_insertion`: the legs a booking brings and the bridge it
leaves) and validated in that order; the first that lowers the objective's operating cost
(`Objective.cost`: km, lateness minutes, workload spread beyond its band) by at least
`min_improvement` is accepted, and with `batch_moves` also the next ones on other drivers.
The ranking here is the phase's own, not the policy's: the learned policy is trained for the
ride counts. The phase stops when a round accepts nothing or after `cost_checks` validator
checks (deterministic, unlike a time limit; the pass's `time_limit_s` still applies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from optimizer.exchange import segment_exchanges
from optimizer.moves import SWAP, Candidates, Move
from optimizer.problem import FloatArray

if TYPE_CHECKING:
    from optimizer.swap_pass import Search

__all__ = ["cost_phase", "estimated_km_saving"]


def estimated_km_saving(search: Search, cands: Candidates) -> FloatArray:
    """Empty km each move or swap would save (positive = fewer km), from the route arrays."""
    routes = search.state.route_arrays()
    saving = routes.km_removal(cands.b1)
    is_swap = cands.kind == SWAP
    skip = np.where(is_swap, cands.b2, -1)
    saving -= routes.km_insertion(cands.b1, cands.dst, skip)
    if is_swap.any():
        b2, src, b1 = cands.b2[is_swap], cands.src[is_swap], cands.b1[is_swap]
        saving[is_swap] += routes.km_removal(b2) - routes.km_insertion(b2, src, b1)
    return saving


def cost_phase(search: Search) -> int:
    """Run the cost phase on `search`'s plan; the number of moves it accepted."""
    from optimizer.swap_pass import pass_candidates

    cfg = search.config
    limit = cfg.cost_checks(int((search.state.assignment >= 0).sum()))
    first = len(search.checked)
    accepted = 0
    while len(search.checked) - first < limit and not search.out_of_time():
        state = search.state
        gap, sq = state.value[0], state.value[1]
        cands = pass_candidates(state, cfg, chains=False)
        same = (cands.gap_after == gap) & (np.abs(cands.sq_after - sq) < 1e-9)
        cands = cands.take(np.nonzero(same)[0])
        ranked: list[tuple[float, Move]] = []
        if len(cands):
            saving = estimated_km_saving(search, cands)
            good = np.nonzero(saving > cfg.min_improvement / 2)[0]
            order = good[np.argsort(-saving[good], kind="stable")][: cfg.max_checks]
            ranked = [(float(saving[i]), cands.move(int(i))) for i in order]
        if cfg.exchanges and len(ranked) < cfg.max_checks:
            # Trades of equal stretches keep every count: the 2-opt* of these routes.
            found = segment_exchanges(
                state, max_rides=cfg.exchange_rides, neutral=True, limit=4 * cfg.max_checks
            )
            balanced = [e for e in found if _balanced(e.move)]
            ranked += [(0.0, e.move) for e in balanced[: cfg.max_checks - len(ranked)]]
        got = _round(search, ranked, limit - (len(search.checked) - first))
        if not got:
            break
        accepted += got
    return accepted


def _balanced(move: Move) -> bool:
    """Every driver in the move gives as many rides as it takes."""
    net: dict[int, int] = {}
    for s in move.steps:
        net[s.from_driver] = net.get(s.from_driver, 0) - 1
        net[s.to_driver] = net.get(s.to_driver, 0) + 1
    return len(move.steps) > 2 and not any(net.values())


def _round(search: Search, ranked: list[tuple[float, Move]], checks_left: int) -> int:
    touched: set[int] = set()
    accepted = 0
    for score, move in ranked:
        if checks_left <= 0:
            break
        drivers = {d for s in move.steps for d in (s.from_driver, s.to_driver)}
        if touched & drivers:
            continue  # its estimate is stale
        checks_left -= 1
        trial = search.check(search.state, move, score)
        if trial is None:
            continue
        search.accept(trial)
        accepted += 1
        touched |= drivers
        if not search.config.batch_moves:
            break
    return accepted
