"""Ejection chains of any ends and depth: one ride leaves a full driver, one arrives at an
empty one, and every driver in between trades one ride for another.

A chain r1 -> r2 -> ... -> rL -> k moves r1 from its driver d0 into the route of r2's driver,
where it takes r2's place; r2 takes r3's place, and so on; the last ride rL goes into driver
k's route without pushing anyone out. Only d0 (one ride fewer) and k (one more) change their
ride counts, so the chain lowers the squared deviation whenever count(d0) - count(k) >= 2, and
never raises the gap. The moves phase's two-step chains only run from the two fullest drivers
to the two emptiest; on patient-transport days the way out of a local optimum often runs
between middle drivers, or through three or four of them.

Each driver appears at most once in a chain, so whether it is feasible splits into one check
per driver: "r fits into s's route, or takes s's place in it" (`RouteArrays.fits`, or
`RouteArrays.insertion` with `skip`, from the route's forward slacks) and "rL fits into k's
route"; taking a ride out of a route never breaks it (drivers may wait). Those checks are a
mask computed for all pairs at once; the validator (`SearchState.trial`) still decides on the
whole chain. The chains are found by a breadth-first search over rides from each full driver
(shortest chains first, each ride reached once per search), so the work is about the number
of (ride, driver) pairs.

A ride that cannot reach a sink within the depth left, even ignoring the one-ride-per-driver
rule (`_sink_distance`: a breadth-first search backwards from the rides with a sink, on
boolean arrays), is not entered in the search: it could end no chain, nor could any ride
reached through it (they are as far from a sink, one step deeper), so the chains and their
order are those of the unpruned search, found with much less work on days where few or no
chains exist (the stuck rounds of a big day).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from optimizer.moves import Move, Step
from optimizer.objective import count_terms_after
from optimizer.problem import BoolArray, IntArray
from optimizer.search_state import SearchState

__all__ = ["Chain", "ejection_chains"]

_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Chain:
    """One ejection chain with the ride-count terms it would give."""

    move: Move
    gap_after: int
    sq_after: float


def ejection_chains(
    state: SearchState,
    *,
    max_depth: int = 4,
    limit: int = 40,
    neighbours: int = 2,
    sources: int = 0,
) -> list[Chain]:
    """Up to `limit` chains that lower the ride-count terms, best terms first, then shortest.

    `max_depth`: most rides one chain moves. `neighbours`: how many rides on each side of a
    ride's place in another route it may take the place of. `sources`: search from at most
    this many of the fullest drivers (0: every driver with at least two rides more than the
    emptiest)."""
    p = state.problem
    counts = state.counts
    k_count = p.n_drivers
    if k_count < 2 or int(counts.max() - counts.min()) < 2:
        return []
    free, takes, arcs = _arcs(state, neighbours)
    # Python lists for the ride-by-ride search below: numpy scalar indexing costs ~10x more.
    owner = state.assignment.tolist()
    locked = p.locked.tolist()
    cap = p.max_rides
    has_room = (cap < 0) | (counts + 1 <= cap)
    order = np.argsort(-counts, kind="stable")
    movable_count = [sum(1 for r in route if not locked[r]) for route in state.routes]
    starts = [int(d) for d in order if counts[d] - counts.min() >= 2]
    if sources > 0:
        starts = starts[:sources]
    found: dict[tuple[Step, ...], None] = {}  # insertion-ordered set of chains
    reach: dict[int, list[int]] = {}  # per start count: `_sink_distance`
    for d0 in starts:
        sink_mask = (counts <= counts[d0] - 2) & has_room
        if not sink_mask.any():
            continue
        sink_ok = sink_mask.tolist()
        level = int(counts[d0])
        if level not in reach:
            reach[level] = _sink_distance(state, arcs, sink_mask, max_depth)
        # A ride entered at depth t can end a chain only if a sink lies within max_depth - t.
        far = [max_depth - x for x in reach[level]]
        # Breadth-first over rides: parent[r] is the ride r takes the place of... reversed:
        # parent[s] = r means r takes s's place, so s is the next ride to place.
        parent: dict[int, int] = {}
        depth: dict[int, int] = {}
        used: dict[int, frozenset[int]] = {}
        queue: deque[int] = deque()
        # Per driver, its movable rides not reached yet: a driver with none left adds nothing
        # to `nxt` below (its rides would all be skipped), so it is not listed at all.
        left = list(movable_count)
        for r in state.routes[d0]:
            if locked[r] or far[r] < 1:
                continue
            parent[r], depth[r], used[r] = -1, 1, frozenset((d0,))
            left[d0] -= 1
            queue.append(r)
        while queue and len(found) < limit:
            r = queue.popleft()
            here = used[r]
            for k in free.get(r, ()):
                if sink_ok[k] and k not in here:
                    steps = _steps(r, k, parent, owner)
                    found.setdefault(steps)
                    break  # one sink per ride is enough: the others give the same counts
            if depth[r] >= max_depth:
                continue
            # r fits into k as it is: any ride of k may go on (taking one out never hurts);
            # else r may take the place of a ride next to where it would sit.
            nxt = [s for k in free.get(r, ()) if left[k] and k not in here for s in state.routes[k]]
            step = depth[r] + 1
            for s in nxt + takes.get(r, []):
                d = owner[s]
                if s in parent or d in here or locked[s] or far[s] < step:
                    continue
                parent[s], depth[s], used[s] = r, step, here | {d}
                left[d] -= 1
                queue.append(s)
        if len(found) >= limit:
            break
    chains = _chains(counts, list(found))
    chains.sort(key=lambda c: (c.gap_after, round(c.sq_after, 9), len(c.move.steps)))
    return chains[:limit]


def _steps(last: int, sink: int, parent: dict[int, int], owner: list[int]) -> tuple[Step, ...]:
    """The chain ending with `last` going to `sink`, first step first."""
    rides = [last]
    while parent[rides[-1]] >= 0:
        rides.append(parent[rides[-1]])
    rides.reverse()
    out = []
    for i, r in enumerate(rides):
        to = int(owner[rides[i + 1]]) if i + 1 < len(rides) else sink
        out.append(Step(int(r), int(owner[r]), to))
    return tuple(out)


def _chains(counts: IntArray, found: list[tuple[Step, ...]]) -> list[Chain]:
    """The chains with their count terms (one vectorised call for all of them)."""
    if not found:
        return []
    src = np.array([steps[0].from_driver for steps in found], dtype=np.int64)
    dest = np.array([steps[-1].to_driver for steps in found], dtype=np.int64)
    gaps, sqs = count_terms_after(counts, src, dest)
    out = []
    for steps, gap, sq in zip(found, gaps.tolist(), sqs.tolist(), strict=True):
        kind: Literal["move", "chain"] = "move" if len(steps) == 1 else "chain"
        out.append(Chain(Move(kind, steps), int(gap), float(sq)))
    return out


@dataclass(frozen=True, slots=True)
class _Arcs:
    """`_arcs`' pairs as arrays: (ride, driver) it fits into, (ride, ride) whose place it
    may take."""

    free_b: IntArray
    free_k: IntArray
    take_b: IntArray
    take_s: IntArray


def _arcs(
    state: SearchState, neighbours: int
) -> tuple[dict[int, list[int]], dict[int, list[int]], _Arcs]:
    """`free[r]`: drivers whose route r fits into as it is; `takes[r]`: rides whose place in
    their own route r may take (a mask from forward slacks; the validator decides); both as
    arrays too."""
    p = state.problem
    ra = state.route_arrays()
    owner = state.assignment
    movable = (owner >= 0) & ~p.locked
    ok = state.solo & movable[:, None]
    ok[np.nonzero(owner >= 0)[0], owner[owner >= 0]] = False
    rb, rk = np.nonzero(ok)
    free: dict[int, list[int]] = {}
    takes: dict[int, list[int]] = {}
    none = np.zeros(0, dtype=np.int64)
    if not len(rb):
        return free, takes, _Arcs(none, none, none, none)
    fits = ra.fits(rb, rk)
    free_b, free_k = rb[fits], rk[fits]
    _group(free, free_b, free_k)
    # Rides near r's place in k's route: the `neighbours` before and after it.
    pred, pred_ok, succ, succ_ok = ra.neighbours(rb, rk)
    cand_b, cand_s = [], []
    for off in range(neighbours):
        for base, base_ok, sign in ((pred, pred_ok, -1), (succ, succ_ok, 1)):
            at = base + sign * off
            inside = base_ok & (at >= 0) & (at < ra.size)
            at = np.clip(at, 0, max(ra.size - 1, 0))
            inside &= ra.driver[at] == rk
            s = ra.booking[at]
            inside &= movable[s]
            cand_b.append(rb[inside])
            cand_s.append(s[inside])
    b_all = np.concatenate(cand_b)
    s_all = np.concatenate(cand_s)
    if not len(b_all):
        return free, takes, _Arcs(free_b, free_k, none, none)
    k_all = owner[s_all]
    own, downstream, _, push = ra.insertion(b_all, k_all, s_all)
    good = (own >= -_EPS) & (np.isnan(push) | (push <= _EPS) | (downstream >= -_EPS))
    # The distinct (b, s) pairs in (b, s) order, grouped by b.
    keys = np.unique(b_all[good] * p.n_bookings + s_all[good])
    bs, ss = keys // p.n_bookings, keys % p.n_bookings
    _group(takes, bs, ss)
    return free, takes, _Arcs(free_b, free_k, bs, ss)


def _group(out: dict[int, list[int]], keys: IntArray, values: IntArray) -> None:
    """out[key] = its values in order, for `keys` sorted ascending (one list slice each)."""
    if not len(keys):
        return
    heads, at = np.unique(keys, return_index=True)
    flat = values.tolist()
    bounds = [*at.tolist(), len(flat)]
    for i, key in enumerate(heads.tolist()):
        out[key] = flat[bounds[i] : bounds[i + 1]]


_FAR = 1 << 20


def _sink_distance(
    state: SearchState, arcs: _Arcs, sink_mask: BoolArray, max_depth: int
) -> list[int]:
    """Per ride, the fewest steps from it to a ride that fits into a sink (`sink_mask`) as
    it is, over the search's arcs without its one-ride-per-driver rule (so a lower bound on
    the search's own); `_FAR` beyond `max_depth - 1` steps and for rides it never enters.

    The search steps from r to every movable ride of a driver r fits into, and to the rides
    whose place r may take."""
    p = state.problem
    owner = state.assignment
    movable = (owner >= 0) & ~p.locked
    dist = np.full(p.n_bookings, _FAR, dtype=np.int64)
    frontier = np.zeros(p.n_bookings, dtype=bool)
    frontier[arcs.free_b[sink_mask[arcs.free_k]]] = True
    dist[frontier] = 0
    for t in range(1, max_depth):
        # Drivers holding a ride of the frontier: every ride that fits into one steps there.
        held = np.zeros(p.n_drivers, dtype=bool)
        held[owner[frontier & movable]] = True
        back = np.zeros(p.n_bookings, dtype=bool)
        back[arcs.free_b[held[arcs.free_k]]] = True
        back[arcs.take_b[frontier[arcs.take_s]]] = True
        frontier = back & (dist == _FAR)
        if not frontier.any():
            break
        dist[frontier] = t
    out: list[int] = dist.tolist()
    return out
