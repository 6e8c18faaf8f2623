"""The cost phase: at the ride counts fairness reached, cut empty driving and lateness.

After the fairness phase, relocations, swaps and segment exchanges that keep both ride-count
terms (gap and squared deviation) are ranked by the empty kilometres they are estimated to
save (`RouteArrays.km_removal` / `km_insertion`: the legs a booking brings and the bridge it
leaves) and validated in that order; the first that lowers the objective's operating cost
(`Objective.cost`: km, lateness minutes, workload spread beyond its band) by at least
`min_improvement` is accepted, and with `batch_moves` also the next ones on other drivers.
The ranking here is the phase's own, not the policy's: the learned policy is trained for the
ride counts. The phase stops when a round accepts nothing or after `cost_checks` validator
checks or `cost_rounds` rounds (deterministic, unlike a time limit; the pass's `time_limit_s`
still applies). On big days (`PassConfig.cost_list_big`) a round ranks a longer list and
checks down it, so it accepts many moves on disjoint drivers per ranking, and only swaps
whose two halves pass the forward-slack test (`swaps_fit`) are ranked.

Where those moves stop (a local optimum, or their budget spent), driver subsets are re-planned
whole for km (`optimizer.km_repair`: pairs, then triples, then fours, the ones whose days
meet most first, each skipped when `km_bound` shows it cannot save `min_improvement`); the
first re-plan the validator accepts is taken and the moves run again from the new plan. The
re-plans share one deterministic budget per pass (`PassConfig.km_work`). Where they stick
too, once per pass on days of 10+ drivers and 50-150 assigned bookings, an annealed ruin and
recreate over related drivers (`optimizer.ruin_recreate`, `PassConfig.rr_budget`) looks
further; its best plan is one more compound move, and the moves run again from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from optimizer.exchange import balanced_exchanges, partner_pairs
from optimizer.km_repair import (
    BOUND_COST,
    REPLAN_COST,
    km_bound,
    km_replan,
    km_subsets,
    pair_promise,
)
from optimizer.moves import SWAP, Candidates, Move, Step
from optimizer.problem import BoolArray, FloatArray, IntArray
from optimizer.ruin_recreate import ruin_recreate

if TYPE_CHECKING:
    from optimizer.swap_pass import Search

__all__ = ["cost_phase", "estimated_km_saving", "neutral_chains", "swaps_fit"]


def estimated_km_saving(search: Search, cands: Candidates) -> FloatArray:
    """Empty km each move or swap would save (positive = fewer km), from the route arrays."""
    routes = search.state.route_arrays()
    saving = routes.km_removal(cands.b1)
    is_swap = cands.kind == SWAP
    swaps = np.nonzero(is_swap)[0]
    if not len(swaps):
        saving -= routes.km_insertion(cands.b1, cands.dst)
        return saving
    moves = np.nonzero(~is_swap)[0]
    # Each swap inserts b1 where b2 leaves and b2 where b1 leaves: one call for both halves.
    b1, b2 = cands.b1[swaps], cands.b2[swaps]
    both = routes.km_insertion(
        np.concatenate([b1, b2]),
        np.concatenate([cands.dst[swaps], cands.src[swaps]]),
        np.concatenate([b2, b1]),
    )
    added = np.empty(len(saving))
    added[moves] = routes.km_insertion(cands.b1[moves], cands.dst[moves])
    added[swaps] = both[: len(swaps)]
    saving -= added
    saving[swaps] += routes.km_removal(b2) - both[len(swaps) :]
    return saving


def swaps_fit(search: Search, cands: Candidates, idx: IntArray) -> BoolArray:
    """For candidates `idx`: True for a move (`generate` offers only moves that fit), and for
    a swap whose two halves each fit where the other leaves (`RouteArrays.insertion` with
    `skip`: the forward-slack test, exact when the two rides are neighbours, else judged
    with the leaving ride still in the route, so a mask, never a verdict)."""
    out = np.ones(len(idx), dtype=bool)
    sw = np.nonzero(cands.kind[idx] == SWAP)[0]
    if not len(sw):
        return out
    at = idx[sw]
    routes = search.state.route_arrays()
    b1, b2 = cands.b1[at], cands.b2[at]
    own, downstream, _, push = routes.insertion(
        np.concatenate([b1, b2]),
        np.concatenate([cands.dst[at], cands.src[at]]),
        np.concatenate([b2, b1]),
    )
    ok = (own >= -1e-6) & (np.isnan(push) | (push <= 1e-6) | (downstream >= -1e-6))
    out[sw] = ok[: len(sw)] & ok[len(sw) :]
    return out


def neutral_chains(search: Search, limit: int) -> list[tuple[float, Move]]:
    """Relocation chains that keep every ride count: b1 leaves driver A for B, and one of B's
    rides, b2, leaves B for a driver C whose count is A's minus one (C = A: a swap).

    For each b2 and count value the cheapest C is taken (insertion km, where b2 fits), then
    each chain is estimated: km b1 and b2 free where they were, minus km they add where they
    go (b1 into B without b2). The `limit` with the largest positive estimates, largest first.
    """
    state = search.state
    p = state.problem
    routes = state.route_arrays()
    counts = state.counts
    assigned = state.assignment >= 0
    movable = np.nonzero(assigned & ~p.locked)[0]
    if len(movable) == 0 or p.n_drivers < 2:
        return []
    k = p.n_drivers
    # (b, C): insertion km and fit of every movable ride into every other driver.
    bb = np.repeat(movable, k)
    cc = np.tile(np.arange(k, dtype=np.int64), len(movable))
    other = (state.assignment[bb] != cc) & state.solo[bb, cc]
    bb, cc = bb[other], cc[other]
    fits = routes.fits(bb, cc)
    bb, cc = bb[fits], cc[fits]
    ins = routes.km_insertion(bb, cc)
    # The cheapest fitting driver per (ride, count value): first of each group once sorted.
    value = counts[cc]
    order = np.lexsort((cc, ins, value, bb))
    bb, cc, ins, value = bb[order], cc[order], ins[order], value[order]
    head = np.ones(len(bb), dtype=bool)
    head[1:] = (bb[1:] != bb[:-1]) | (value[1:] != value[:-1])
    best_c = np.full((p.n_bookings, int(counts.max()) + 2), -1, dtype=np.int64)
    best_km = np.full(best_c.shape, np.inf)
    best_c[bb[head], value[head]] = cc[head]
    best_km[bb[head], value[head]] = ins[head]
    removal = np.zeros(p.n_bookings)
    removal[movable] = routes.km_removal(movable)
    # (b1, B, b2): b1 into B (where it could ride), b2 one of B's movable rides.
    size = routes.size
    flat_b, flat_d = routes.booking[:size], routes.driver[:size]
    keep_flat = ~p.locked[flat_b]
    flat_b, flat_d = flat_b[keep_flat], flat_d[keep_flat]
    lens = np.bincount(flat_d, minlength=k)
    starts = np.cumsum(lens) - lens
    pb, pd = np.nonzero(state.solo[movable])
    pb = movable[pb]
    keep_pair = state.assignment[pb] != pd
    pb, pd = pb[keep_pair], pd[keep_pair]
    # The most promising first steps only (km freed minus km added, ignoring b2): the
    # chains behind the others are rarely worth a check, and the product is large.
    promise = removal[pb] - routes.km_insertion(pb, pd)
    top = np.argsort(-promise, kind="stable")[: 8 * limit]
    pb, pd = pb[top], pd[top]
    rep = lens[pd]
    if rep.sum() == 0:
        return []
    first = np.repeat(pb, rep)
    dst = np.repeat(pd, rep)
    offset = np.arange(int(rep.sum())) - np.repeat(np.cumsum(rep) - rep, rep)
    then = flat_b[np.repeat(starts[pd], rep) + offset]
    src = state.assignment[first]
    target = counts[src] - 1
    ok = target >= 0
    end = np.where(ok, best_c[then, np.maximum(target, 0)], -1)
    ok &= end >= 0
    first, dst, then, src, end = first[ok], dst[ok], then[ok], src[ok], end[ok]
    if len(first) == 0:
        return []
    own, downstream, _, push, added = routes.insertion_km(first, dst, then)
    fit1 = (own >= -1e-6) & ((np.nan_to_num(push, nan=0.0) <= 1e-6) | (downstream >= -1e-6))
    saving = removal[first] + removal[then] - added
    saving -= best_km[then, counts[src] - 1]
    keep = np.nonzero(fit1 & (saving > 1e-6))[0]
    keep = keep[np.argsort(-saving[keep], kind="stable")][:limit]
    out = []
    columns = (first[keep], src[keep], dst[keep], then[keep], end[keep], saving[keep])
    for b1, a, b, b2, c, km in zip(*(col.tolist() for col in columns), strict=True):
        kind: Literal["swap", "chain"] = "swap" if c == a else "chain"
        out.append((km, Move(kind, (Step(b1, a, b), Step(b2, b, c)))))
    return out


def cost_phase(search: Search) -> int:
    """Run the cost phase on `search`'s plan; the number of moves it accepted."""
    cfg = search.config
    limit = cfg.cost_checks(int((search.state.assignment >= 0).sum()))
    first = len(search.checked)
    accepted = 0
    pairs = partner_pairs(search.state) if cfg.exchanges else []
    cache: dict[tuple[int, int], Any] = {}
    rounds = 0
    wide = False  # the costlier neighbourhoods, once plain moves and swaps are exhausted
    # The plain moves and swaps ranked by estimated saving (one list, kept while the plan is
    # unchanged: a round that accepts nothing is followed by a wide one on the same plan).
    narrow_cache: list[list[tuple[float, Move]]] = []
    tried: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {}
    budget = [cfg.km_work(int((search.state.assignment >= 0).sum()))]
    max_rounds = cfg.cost_rounds(len(search.state.assignment))
    ruined = False
    while not search.out_of_time():
        checks_left = limit - (len(search.checked) - first)
        if checks_left <= 0 or rounds >= max_rounds:
            wide = True  # the moves' budget is spent: only the re-plans may go on
        else:
            rounds += 1
            got = _local_round(search, narrow_cache, wide, pairs, cache, checks_left)
            accepted += got
            if got:
                narrow_cache.clear()  # the plan changed: rank again
                continue
            if not wide:
                wide = True
                continue
        # The moves are stuck (or spent): re-plan driver subsets for km, and once those are
        # stuck too, ruin and recreate (on big days; once per pass).
        got = _km_round(search, tried, budget)
        if not got and not ruined:
            ruined = True
            got = ruin_recreate(search)
        if not got:
            break
        accepted += got
        narrow_cache.clear()
        wide = False
    return accepted


def _local_round(
    search: Search,
    narrow_cache: list[list[tuple[float, Move]]],
    wide: bool,
    pairs: list[Any],
    cache: dict[tuple[int, int], Any],
    checks_left: int,
) -> int:
    """One round of relocations and swaps (with `wide`, also neutral chains and balanced
    exchanges), ranked by estimated km saving; the number of moves accepted."""
    cfg = search.config
    state = search.state
    if not narrow_cache:
        # Swaps between rides further apart in the day than the fairness phase looks: a
        # time slot holds about one ride per driver, so the window grows with the fleet.
        window = max(6, min(4 * state.problem.n_drivers, 60))
        # What `pass_candidates` offers, filtered to the count-neutral ones while generating.
        lexicographic = cfg.objective.mode == "lexicographic"
        cands = state.candidates(balancing_only=lexicographic, swap_window=window, keep="same")
        narrow: list[tuple[float, Move]] = []
        if len(cands):
            saving = estimated_km_saving(search, cands)
            good = np.nonzero(saving > cfg.min_improvement / 2)[0]
            if cfg.big_cost_day(int((state.assignment >= 0).sum())):
                # Most swaps of a big day's long list break a window or the shift: checking
                # them all cost more than the rankings (~85 % of the phase's checks).
                good = good[swaps_fit(search, cands, good)]
            longest = cfg.cost_list(int((state.assignment >= 0).sum()))
            order = good[np.argsort(-saving[good], kind="stable")][:longest]
            narrow = [(float(saving[i]), cands.move(int(i))) for i in order]
        narrow_cache.append(narrow)
    ranked = list(narrow_cache[0])
    if wide:
        ranked += neutral_chains(search, cfg.max_checks)
        if cfg.exchanges:
            # Trades of equal stretches keep every count: the 2-opt* of these routes.
            ranked += balanced_exchanges(
                state, max_rides=cfg.exchange_rides, limit=cfg.max_checks, pairs=pairs, cache=cache
            )
        ranked.sort(key=lambda item: -item[0])
    return _round(search, ranked, checks_left)


def _km_round(
    search: Search, tried: dict[tuple[int, ...], tuple[tuple[int, ...], ...]], budget: list[float]
) -> int:
    """Re-plan driver subsets for km (`optimizer.km_repair`) until the validator accepts one
    (1) or the subsets or `budget` run out (0). `tried`: each subset's routes when its
    re-plan last found nothing (the same routes give the same answer: skipped)."""
    if budget[0] <= 0:
        return 0
    state = search.state
    cfg = search.config
    k = state.problem.n_drivers
    # Pairs first: their beam is near exact and cheap; a size above the fleet is the whole day.
    sizes = sorted({min(size, k) for size in cfg.km_replan_sizes})
    promise = pair_promise(state) if sizes[0] < k else None
    for size in sizes:
        for drivers in km_subsets(state, size, promise):
            if budget[0] <= 0:
                return 0
            sig = tuple(tuple(state.routes[d]) for d in drivers)
            if tried.get(drivers) == sig:
                continue  # same routes as when it found nothing
            tried[drivers] = sig
            budget[0] -= BOUND_COST
            if km_bound(state, drivers, cfg.objective) < cfg.min_improvement:
                continue  # no re-plan of these drivers could save enough
            move, effort = km_replan(
                state, drivers, cfg.objective, cfg.km_replan_width, cfg.min_improvement
            )
            budget[0] -= REPLAN_COST + effort  # + the partial plans the beam expanded
            if move is None:
                continue
            trial = search.check(state, move, 0.0)
            if trial is not None:
                search.accept(trial)
                return 1
    return 0


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
