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
from typing import Literal

import numpy as np

from optimizer.moves import Move, Step
from optimizer.problem import BoolArray
from optimizer.search_state import SearchState

__all__ = ["Exchange", "segment_exchanges"]


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
    mean = float(counts.mean())
    gap, sq = int(state.value[0]), float(state.value[1])
    order = p.order
    movable = ~p.locked
    solo = state.solo
    # The max and min count over the drivers an exchange leaves alone: the first of the top
    # (bottom) three not in the pair.
    top = [int(d) for d in np.argsort(-counts, kind="stable")[:3]]
    bottom = [int(d) for d in np.argsort(counts, kind="stable")[:3]]
    found: list[tuple[float, float, int, int, int, int, int]] = []
    merged_of: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for a in range(k):
        for b in range(a + 1, k):
            if drivers is not None and not (drivers[a] or drivers[b]):
                continue
            ca, cb = int(counts[a]), int(counts[b])
            if not neutral and abs(ca - cb) < 2:
                continue  # no exchange between these two can lower the squared deviation
            rest_max = next((int(counts[d]) for d in top if d not in (a, b)), -(10**9))
            rest_min = next((int(counts[d]) for d in bottom if d not in (a, b)), 10**9)
            merged = sorted(
                [(int(order[x]), x, a) for x in state.routes[a]]
                + [(int(order[x]), x, b) for x in state.routes[b]]
            )
            merged_of[a, b] = merged
            base = (ca - mean) ** 2 + (cb - mean) ** 2
            m = len(merged)
            for i in range(m):
                ta = tb = 0
                for j in range(i, min(m, i + max_rides)):
                    _, x, owner = merged[j]
                    if not movable[x]:
                        continue  # a locked ride stays; the exchange goes around it
                    if not solo[x, b if owner == a else a]:
                        break  # it could never ride with the other driver
                    if owner == a:
                        ta += 1
                    else:
                        tb += 1
                    if ta + tb < 2:
                        continue  # single moves are the plain phase's
                    na, nb = ca - ta + tb, cb - tb + ta
                    new_sq = sq + (na - mean) ** 2 + (nb - mean) ** 2 - base
                    new_gap = max(rest_max, na, nb) - min(rest_min, na, nb)
                    better = new_gap < gap or (new_gap == gap and new_sq < sq - 1e-9)
                    same = new_gap == gap and abs(new_sq - sq) < 1e-9
                    if better or (neutral and same):
                        found.append((new_gap, round(new_sq, 9), ta + tb, a, b, i, j))
    found.sort()
    out = []
    for g, q, _, a, b, i, j in found[:limit]:
        steps = tuple(
            Step(x, owner, b if owner == a else a)
            for _, x, owner in merged_of[a, b][i : j + 1]
            if movable[x]
        )
        ta = sum(1 for st in steps if st.from_driver == a)
        kind: Literal["swap", "compound"] = "swap" if ta == 1 and len(steps) == 2 else "compound"
        out.append(Exchange(Move(kind, steps), int(g), float(q)))
    return out
