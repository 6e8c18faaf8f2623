"""Segment exchanges: two drivers trade every ride they hold in one stretch of the day.

For drivers A and B and an interval of the service order, A's movable rides in it go to B and
B's go to A, all at once (validated as one unit, so no in-between plan has to be feasible).
A swap and a tail exchange (2-opt*) are special cases. This is the neighbourhood that frees
days where every single move, swap and chain is blocked by a time window on the way but a
whole stretch of two routes can change hands (a 10x3 day whose optimum needs three bookings
moved together is the typical case).

Candidates are ordered by their exact ride-count terms after the exchange (gap, then squared
deviation; count-neutral ones by the empty kilometres they are estimated to save), then fewer
rides moved; the validator decides. Segments hold at most `max_rides` rides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from optimizer.moves import Move, Step
from optimizer.objective import count_terms_after
from optimizer.problem import BoolArray
from optimizer.ride_model import tables
from optimizer.search_state import SearchState

__all__ = ["Exchange", "balanced_exchanges", "partner_pairs", "segment_exchanges"]

FLAT_FROM = 160
"""`balanced_exchanges` scores the stretches of all pairs at once in numpy from this many
rides (summed over the pairs to score) on; below, one pair at a time in Python."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """One segment exchange with the count terms it would give."""

    move: Move
    gap_after: int
    sq_after: float


def segment_exchanges(
    state: SearchState,
    *,
    max_rides: int = 5,
    neutral: bool = False,
    limit: int = 40,
    drivers: BoolArray | None = None,
) -> list[Exchange]:
    """The `limit` best exchanges that improve the ride-count terms (or, with `neutral`, keep
    them), best first. `drivers`: only exchanges in which one of these drivers takes part."""
    p = state.problem
    counts = state.counts
    k = p.n_drivers
    if k < 2:
        return []
    gap, sq = int(state.value[0]), float(state.value[1])
    rt = tables(p)
    order, locked, solo = rt.order, rt.locked, state.solo_rows()
    # (a, b, net rides a -> b, i, j, kept): the movable rides of merged[i..j] change driver,
    # except merged[kept] when kept >= 0 (one ride may stay: the stretch need not be whole).
    raw: list[tuple[int, int, int, int, int, int]] = []
    merged_of: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for a in range(k):
        for b in range(a + 1, k):
            if drivers is not None and not (drivers[a] or drivers[b]):
                continue
            if not neutral and abs(int(counts[a]) - int(counts[b])) < 2:
                continue  # no exchange between these two can lower the squared deviation
            merged = sorted(
                [(order[x], x, a) for x in state.routes[a]]
                + [(order[x], x, b) for x in state.routes[b]]
            )
            merged_of[a, b] = merged
            m = len(merged)
            # Only a net transfer strictly between 0 and counts[a] - counts[b] can lower the
            # ride-count terms, and only 0 or that difference (the pair's counts trade
            # places) keeps them (any other widens the pair's spread: a higher squared
            # deviation, never a lower gap): the others are not listed. With `neutral` the
            # bounds are inclusive.
            span = int(counts[a]) - int(counts[b])
            lo, hi = min(0, span), max(0, span)
            if neutral:
                lo, hi = lo - 1, hi + 1
            for i in range(m):
                ta = tb = 0
                inside: list[int] = []  # merged indices of the movable rides so far
                for j in range(i, min(m, i + max_rides)):
                    _, x, owner = merged[j]
                    if locked[x]:
                        continue  # a locked ride stays; the exchange goes around it
                    if not solo[x][b if owner == a else a]:
                        break  # it could never ride with the other driver
                    inside.append(j)
                    if owner == a:
                        ta += 1
                    else:
                        tb += 1
                    if ta + tb >= 2 and lo < ta - tb < hi:  # single moves: the plain phase's
                        raw.append((a, b, ta - tb, i, j, -1))
                    if ta + tb >= 3:  # the same stretch with one inner ride staying
                        for kept in inside[1:-1]:
                            net = ta - tb - (1 if merged[kept][2] == a else -1)
                            if lo < net < hi:
                                raw.append((a, b, net, i, j, kept))
    if not raw:
        return []
    arr = np.asarray(raw, dtype=np.int64)
    gaps, sqs = count_terms_after(counts, arr[:, 0], arr[:, 1], arr[:, 2])
    better = (gaps < gap) | ((gaps == gap) & (sqs < sq - 1e-9))
    if neutral:
        better |= (gaps == gap) & (np.abs(sqs - sq) < 1e-9)
    size = arr[:, 4] - arr[:, 3] - (arr[:, 5] >= 0)
    idx = np.nonzero(better)[0]
    # Best count terms first, then fewer rides, then a fixed order (deterministic).
    idx = idx[np.lexsort((arr[idx, 5], arr[idx, 4], arr[idx, 3], arr[idx, 1], arr[idx, 0],
                          size[idx], np.round(sqs[idx], 9), gaps[idx]))]  # fmt: skip
    out = []
    top = idx[:limit]
    for (a, b, _, i, j, kept), g, q in zip(
        arr[top].tolist(), gaps[top].tolist(), sqs[top].tolist(), strict=True
    ):
        steps = tuple(
            Step(x, owner, b if owner == a else a)
            for t, (_, x, owner) in enumerate(merged_of[a, b][i : j + 1], start=i)
            if not locked[x] and t != kept
        )
        ta = sum(1 for st in steps if st.from_driver == a)
        kind: Literal["swap", "compound"] = "swap" if ta == 1 and len(steps) == 2 else "compound"
        out.append(Exchange(Move(kind, steps), int(g), float(q)))
    return out


def balanced_exchanges(
    state: SearchState,
    *,
    max_rides: int = 6,
    limit: int = 40,
    partners: int = 8,
    pairs: list[tuple[int, int]] | None = None,
    cache: dict[tuple[int, int], Any] | None = None,
) -> list[tuple[float, Move]]:
    """Exchanges in which each of the two drivers gives as many rides as it takes (every
    count stays), with the empty km each is estimated to save, most saving first.

    The estimate is exact for the legs that change: a segment moves as a block, so only the
    legs into and out of each traded stretch differ. Only positive estimates are returned.
    With many drivers, each trades with its `partners` nearest (by empty km between routes),
    or within `pairs`. `cache` (kept by the caller between rounds) remembers each pair's
    exchanges until one of its two routes changes.
    """
    order = tables(state.problem).order
    routes = state.routes
    found: list[tuple[float, int, int, int, int]] = []
    merged_of: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    cache = {} if cache is None else cache
    todo: list[tuple[int, int]] = []
    for a, b in _pairs(state, partners) if pairs is None else pairs:
        key = (tuple(routes[a]), tuple(routes[b]))
        hit = cache.get((a, b))
        if hit is not None and hit[0] == key:
            merged_of[a, b] = hit[1]
            found += hit[2]
            continue
        merged_of[a, b] = sorted(
            [(order[x], x, a) for x in routes[a]] + [(order[x], x, b) for x in routes[b]]
        )
        todo.append((a, b))
    if todo:
        merged = [merged_of[ab] for ab in todo]
        # numpy's fixed cost (~1 ms) exceeds the whole loop's on small days
        windows = _windows_flat if sum(map(len, merged)) >= FLAT_FROM else _windows_loop
        fresh = windows(state, todo, merged, max_rides)
        for (a, b), mine in zip(todo, fresh, strict=True):
            cache[a, b] = ((tuple(routes[a]), tuple(routes[b])), merged_of[a, b], mine)
            found += mine
    found.sort()
    out = []
    for neg, a, b, i, j in found[:limit]:
        steps = tuple(Step(x, o, b if o == a else a) for _, x, o in merged_of[a, b][i : j + 1])
        kind: Literal["swap", "compound"] = "swap" if len(steps) == 2 else "compound"
        out.append((-neg, Move(kind, steps)))
    return out


def _windows_flat(
    state: SearchState,
    pairs: list[tuple[int, int]],
    merged: list[list[tuple[int, int, int]]],
    max_rides: int,
) -> list[list[tuple[float, int, int, int, int]]]:
    """For each pair (a, b) and its rides merged in service order: every stretch [i, j] of
    at most `max_rides` rides, all movable to the other driver, holding as many of a's rides
    as of b's (at least one each), whose trade saves empty km, as (-saving, a, b, i, j).

    All pairs at once in flat arrays (a pair's stretches never cross into the next pair). Per
    driver d the legs that change are the one into its first traded ride (from its last ride
    before the stretch, or its start) and the one out of its last (to its first ride after,
    if any); saving = (old - new for a) + (old - new for b), added in that order."""
    p = state.problem
    km, start_km = p.travel.dropoff_to_pickup_km, p.travel.start_to_pickup_km
    lens = np.array([len(m) for m in merged], dtype=np.int64)
    total = int(lens.sum())
    seg = np.repeat(np.arange(len(pairs)), lens)
    seg_start = np.repeat(np.cumsum(lens) - lens, lens)
    seg_end = seg_start + lens[seg]
    ride = np.fromiter((x for m in merged for _, x, _ in m), dtype=np.int64, count=total)
    owner = np.fromiter((o for m in merged for _, _, o in m), dtype=np.int64, count=total)
    pa = np.array([a for a, _ in pairs], dtype=np.int64)[seg]
    pb = np.array([b for _, b in pairs], dtype=np.int64)[seg]
    is_a = owner == pa
    other = np.where(is_a, pb, pa)
    bad = p.locked[ride] | ~state.solo[ride, other]
    idx = np.arange(total)
    big = total + 1
    next_bad = np.minimum.accumulate(np.where(bad, idx, big)[::-1])[::-1]
    cum_a = np.concatenate(([0], np.cumsum(is_a)))

    def prev_of(mask: BoolArray) -> Any:  # last index <= t with mask, in t's pair, else -1
        last = np.maximum.accumulate(np.where(mask, idx, -1))
        return np.where(last >= seg_start, last, -1)

    def next_of(mask: BoolArray) -> Any:  # first index >= t with mask, in t's pair, else big
        first = np.minimum.accumulate(np.where(mask, idx, big)[::-1])[::-1]
        return np.where(first < seg_end, first, big)

    prev_a, prev_b, next_a, next_b = prev_of(is_a), prev_of(~is_a), next_of(is_a), next_of(~is_a)
    # Stretches [i, i + n - 1] with an even number n of rides (equal shares need it).
    i_all, j_all = [], []
    for n in range(2, max_rides + 1, 2):
        i = idx[: total - n + 1] if total >= n else idx[:0]
        j = i + n - 1
        ok = (j < seg_end[i]) & (next_bad[i] > j) & (cum_a[j + 1] - cum_a[i] == n // 2)
        i_all.append(i[ok])
        j_all.append(j[ok])
    i = np.concatenate(i_all)
    j = np.concatenate(j_all)
    if not len(i):
        return [[] for _ in pairs]
    a, b = pa[i], pb[i]
    fa, fb = ride[next_a[i]], ride[next_b[i]]
    la, lb = ride[prev_a[j]], ride[prev_b[j]]

    def before(prev: Any) -> Any:  # the driver's last ride before i (ride id), else -1
        t = np.where(i > seg_start[i], prev[np.maximum(i - 1, 0)], -1)
        return np.where(t >= 0, ride[np.maximum(t, 0)], -1)

    def after(nxt: Any) -> Any:  # the driver's first ride after j (ride id), else -1
        t = np.where(j + 1 < seg_end[j], nxt[np.minimum(j + 1, total - 1)], big)
        return np.where(t < big, ride[np.minimum(t, total - 1)], -1)

    def into(d: Any, pre: Any, y: Any) -> Any:
        return np.where(pre < 0, start_km[d, y], km[np.maximum(pre, 0), y])

    def out_of(x: Any, post: Any) -> Any:
        return np.where(post < 0, 0.0, km[x, np.maximum(post, 0)])

    pre_a, pre_b, post_a, post_b = before(prev_a), before(prev_b), after(next_a), after(next_b)
    old_a = into(a, pre_a, fa) + out_of(la, post_a)
    new_a = into(a, pre_a, fb) + out_of(lb, post_a)
    old_b = into(b, pre_b, fb) + out_of(lb, post_b)
    new_b = into(b, pre_b, fa) + out_of(la, post_b)
    saving = (old_a - new_a) + (old_b - new_b)
    keep = np.nonzero(saving > 1e-6)[0]
    out: list[list[tuple[float, int, int, int, int]]] = [[] for _ in pairs]
    starts = seg_start.tolist()
    for s, q, ii, jj in zip(
        seg[i[keep]].tolist(),
        saving[keep].tolist(),
        i[keep].tolist(),
        j[keep].tolist(),
        strict=True,
    ):
        ab = pairs[s]
        out[s].append((-q, ab[0], ab[1], ii - starts[ii], jj - starts[ii]))
    return out


def _windows_loop(
    state: SearchState,
    pairs: list[tuple[int, int]],
    merged: list[list[tuple[int, int, int]]],
    max_rides: int,
) -> list[list[tuple[float, int, int, int, int]]]:
    """`_windows_flat`, one pair and one stretch at a time (the same figures)."""
    p = state.problem
    km, start_km = p.travel.dropoff_to_pickup_km, p.travel.start_to_pickup_km
    locked, solo = tables(p).locked, state.solo_rows()
    out = []
    for (a, b), pair in zip(pairs, merged, strict=True):
        mine: list[tuple[float, int, int, int, int]] = []
        m = len(pair)
        owners = [o for _, _, o in pair]
        rides = [x for _, x, _ in pair]
        # Per driver: its last ride before merged index t, and its first ride after t.
        before: dict[int, list[int]] = {}
        after: dict[int, list[int]] = {}
        for d in (a, b):
            prev, ahead = [-1] * m, [-1] * m
            seen = -1
            for t in range(m):
                prev[t] = seen
                if owners[t] == d:
                    seen = rides[t]
            seen = -1
            for t in range(m - 1, -1, -1):
                ahead[t] = seen
                if owners[t] == d:
                    seen = rides[t]
            before[d], after[d] = prev, ahead

        def leg(d: int, x: int, y: int) -> float:
            if y < 0:
                return 0.0
            return start_km.item(d, y) if x < 0 else km.item(x, y)

        for i in range(m):
            first = {a: -1, b: -1}
            last = {a: -1, b: -1}
            count = {a: 0, b: 0}
            for j in range(i, min(m, i + max_rides)):
                x, o = rides[j], owners[j]
                if locked[x] or not solo[x][b if o == a else a]:
                    break
                if first[o] < 0:
                    first[o] = x
                last[o] = x
                count[o] += 1
                if count[a] != count[b] or count[a] == 0:
                    continue
                saving = 0.0
                for d, e in ((a, b), (b, a)):
                    pre, post = before[d][i], after[d][j]
                    old = leg(d, pre, first[d]) + leg(d, last[d], post)
                    new = leg(d, pre, first[e]) + leg(d, last[e], post)
                    saving += old - new
                if saving > 1e-6:
                    mine.append((-saving, a, b, i, j))
        out.append(mine)
    return out


def partner_pairs(state: SearchState, partners: int = 8) -> list[tuple[int, int]]:
    """Driver pairs worth trading between (see `_pairs`)."""
    return _pairs(state, partners)


def _pairs(state: SearchState, partners: int) -> list[tuple[int, int]]:
    """Driver pairs (a < b): all of them, or each driver with its nearest `partners`."""
    k = state.problem.n_drivers
    if k <= partners + 1:
        return [(a, b) for a in range(k) for b in range(a + 1, k)]
    km = state.problem.travel.dropoff_to_pickup_km
    near = np.full((k, k), np.inf)
    routes = state.route_arrays()
    flat_b, flat_d = routes.booking[: routes.size], routes.driver[: routes.size]
    drivers, starts = np.unique(flat_d, return_index=True)
    for a in drivers.tolist():
        ra = state.routes[a]
        # For each of a's rides, the nearest ride of every other driver; then the mean.
        nearest = np.minimum.reduceat(km[np.ix_(ra, flat_b)], starts, axis=1)
        near[a, drivers] = nearest.mean(axis=0)
        near[a, a] = np.inf
    pairs: set[tuple[int, int]] = set()
    for a in range(k):
        for b in np.argsort(near[a], kind="stable")[:partners]:
            if np.isfinite(near[a, b]):
                pairs.add((min(a, int(b)), max(a, int(b))))
    return sorted(pairs)
