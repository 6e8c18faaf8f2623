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
                    if ta + tb >= 2:  # single moves are the plain phase's
                        raw.append((a, b, ta - tb, i, j, -1))
                    if ta + tb >= 3:  # the same stretch with one inner ride staying
                        for kept in inside[1:-1]:
                            net = ta - tb - (1 if merged[kept][2] == a else -1)
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
    p = state.problem
    km, start_km = p.travel.dropoff_to_pickup_km, p.travel.start_to_pickup_km
    rt = tables(p)
    order, locked, solo = rt.order, rt.locked, state.solo_rows()
    routes = state.routes
    found: list[tuple[float, int, int, int, int]] = []
    merged_of: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    cache = {} if cache is None else cache
    for a, b in _pairs(state, partners) if pairs is None else pairs:
        key = (tuple(routes[a]), tuple(routes[b]))
        hit = cache.get((a, b))
        if hit is not None and hit[0] == key:
            merged_of[a, b] = hit[1]
            found += hit[2]
            continue
        mine: list[tuple[float, int, int, int, int]] = []
        merged = sorted(
            [(order[x], x, a) for x in routes[a]] + [(order[x], x, b) for x in routes[b]]
        )
        merged_of[a, b] = merged
        m = len(merged)
        owners = [o for _, _, o in merged]
        rides = [x for _, x, _ in merged]
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
        cache[a, b] = (key, merged, mine)
        found += mine
    found.sort()
    out = []
    for neg, a, b, i, j in found[:limit]:
        steps = tuple(Step(x, o, b if o == a else a) for _, x, o in merged_of[a, b][i : j + 1])
        kind: Literal["swap", "compound"] = "swap" if len(steps) == 2 else "compound"
        out.append((-neg, Move(kind, steps)))
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
