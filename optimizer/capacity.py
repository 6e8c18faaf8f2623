"""Whether a driver alone could serve more rides than it does, in some plan.

`can_take_more` is the fairness phase's optimality certificate (no driver at least two rides
below the fullest could take one more: no plan has better ride-count terms); the subset
repair (`optimizer.repair`) asks the same per driver among a subset's rides, and the
whole-day re-plan how many at most (`most`). Exact for one driver alone: the ride model's
earliest-pickup recursion over the service order.
"""

from __future__ import annotations

import hashlib

import numpy as np

from optimizer.problem import BoolArray
from optimizer.ride_model import duration, pickup_at
from optimizer.search_state import SearchState

__all__ = ["can_take_more", "most", "serves_at_least"]


def can_take_more(state: SearchState) -> BoolArray:
    """(K,): the drivers at least two rides below the fullest that could serve one ride more
    than they do, in some plan.

    Exact for one driver alone: whether it can serve that many among the rides it may take
    (its own, and every movable ride it could serve alone), keeping its locked rides, its
    shift, its ride cap and every ride's deadline, by the ride model's earliest-pickup
    recursion over the service order (waiting is allowed, so the earliest pickup of the c-th
    ride dominates). If none can, neither the gap nor the squared deviation can improve in any
    plan (a ride given to a driver at most one below the fullest lowers neither): the
    fairness phase is provably done.
    """
    p = state.problem
    k = p.n_drivers
    out = np.zeros(k, dtype=bool)
    top = int(state.counts.max()) if k else 0
    for g in range(k):
        have = int(state.counts[g])
        cap = int(p.max_rides[g])
        if have > top - 2 or (0 <= cap <= have):
            continue
        out[g] = serves_at_least(state, g, have + 1)
    return out


def serves_at_least(
    state: SearchState, g: int, target: int, among: BoolArray | None = None
) -> bool:
    """Whether driver `g` alone could serve `target` rides (see `can_take_more`), taking
    others' rides only `among` these (default: any).

    Without `among` the answers for every count are kept on the problem for the pass (keyed
    by its deadlines and assigned rides, which never change during it, and by g's own rides
    outside the others it may take: the only way the ride set depends on the plan), so the
    stuck rounds of a pass do not repeat the recursion for drivers whose rides did not move."""
    p = state.problem
    owner = state.assignment
    mine = owner == g
    others = (owner >= 0) & ~p.locked & state.solo[:, g]
    if among is not None:
        served = _served(state, g, mine, mine | (others & among), target)
        return target < len(served) and served[target]
    digest = hashlib.blake2b(state.deadline.tobytes(), digest_size=12)
    digest.update(np.packbits(owner >= 0).tobytes())
    cache: dict[tuple[int, bytes], tuple[list[bool], bool]] = p.memo(
        f"served:{digest.hexdigest()}", _new
    )
    key = (g, np.nonzero(mine & ~others)[0].tobytes())
    hit = cache.get(key)
    if hit is None or (target >= len(hit[0]) and not hit[1]):
        # Only as far as asked (plus a little: callers ask one count more as plans improve);
        # the recursion to every reachable count costs three times as much on big days.
        upto = target + _SERVED_AHEAD
        counts = _served(state, g, mine, mine | others, upto)
        hit = cache[key] = (counts, len(counts) <= upto)
    counts, _ = hit
    return target < len(counts) and counts[target]


# How many counts past the one asked `serves_at_least` answers ahead (kept for later asks).
_SERVED_AHEAD = 2


def _new(_: object) -> dict[tuple[int, bytes], tuple[list[bool], bool]]:
    return {}


def _served(
    state: SearchState, g: int, mine: BoolArray, may: BoolArray, upto: int | None
) -> list[bool]:
    """`out[c]`: whether `g` could serve c of the rides `may` (its locked ones among them), for
    c = 1 .. `upto` (None: until no count more is possible); shorter when a count is out of
    reach (every larger one is too). The earliest-pickup recursion over the service order."""
    p = state.problem
    rides = np.nonzero(may)[0]
    n = len(rides)
    out = [False]
    if n == 0:
        return out
    if upto is not None and n < upto:
        upto = n  # no count above n is possible: the list below ends there (complete)
    rides = rides[np.argsort(p.order[rides], kind="stable")]
    must = p.locked[rides] & mine[rides]
    dur = duration(p, rides)
    latest_start = np.minimum(state.deadline[rides], p.shift_end[g] - dur)
    # j may follow i only if no locked ride of g lies strictly between them (it must be served).
    idx = np.arange(n)
    last_must = np.maximum.accumulate(np.where(must, idx, -1))  # last locked at or before j
    prev_must = np.concatenate(([-1], last_must[:-1]))  # last locked strictly before j
    follow = (idx[:, None] < idx[None, :]) & (idx[:, None] >= prev_must[None, :])
    # The legs j may follow i by (inf where it may not): pick + dur + inf is inf as in
    # np.where(follow, pick + dur + legs, inf), so the same figures with one pass less a count.
    legs = np.where(follow, p.travel.dropoff_to_pickup[np.ix_(rides, rides)], np.inf)
    first = pickup_at(p, p.shift_start[g] + p.travel.start_to_pickup[g, rides], rides)
    pick = np.where(prev_must < 0, first, np.inf)
    pick = np.where(pick <= latest_start + 1e-6, pick, np.inf)
    done_ok = idx >= last_must[-1]  # a route must have served g's last locked ride
    for c in range(1, (n if upto is None else upto) + 1):
        out.append(bool(np.isfinite(pick[done_ok]).any()))
        if c == upto:
            break
        arrive = ((pick + dur)[:, None] + legs).min(axis=0)
        nxt = pickup_at(p, arrive, rides)
        pick = np.where(nxt <= latest_start + 1e-6, nxt, np.inf)
        if not np.isfinite(pick).any():
            break
    return out


def most(state: SearchState, g: int, limit: int) -> int:
    """The most rides (up to `limit`, at least its current count) driver `g` could serve
    alone (`serves_at_least`)."""
    have = int(state.counts[g])
    while have < limit and serves_at_least(state, g, have + 1):
        have += 1
    return max(have, int(state.counts[g]))
