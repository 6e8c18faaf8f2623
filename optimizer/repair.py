"""Subset repair: when no move, chain, exchange or lookahead improves, re-plan three drivers
exactly.

On days with tight windows and a minority of wheelchair vans (the patient-transport held-out
days), a local optimum of the ride counts is often left only by re-planning a few drivers
together: three drivers trading five to nine rides at once, where every step in between is
infeasible. The exact solver's model (`optimizer.exact`, the same ride model and hard
constraints) restricted to the rides of three drivers finds such a re-plan in a few
milliseconds: the least sum of squared ride counts among those drivers (the others keep
theirs, so that is the pass's squared deviation), then the fewest rides moved, below the
current sum. It is a candidate like any other: the validator (`SearchState.trial`) checks it
against the lateness rule and every hard constraint on the whole plan, and the audit lists its
steps.

Which three: a fullest driver, one with at least two rides fewer, and a third whose rides lie
near both (mean empty km from each ride to the nearest ride of the other), fullest first, then
the biggest count difference, then the nearest. At most `repair_subsets` solves per stuck plan,
each bounded by a conflict count (not wall time), so the pass stays deterministic.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from optimizer.moves import Move, Step
from optimizer.problem import BoolArray, FloatArray
from optimizer.ride_model import duration, pickup_at
from optimizer.search_state import SearchState

__all__ = ["can_take_more", "repair_moves", "subsets"]

_SCALE = 1000  # model time unit: 1/1000 minute, as in `optimizer.exact`


def repair_moves(
    state: SearchState,
    *,
    tries: tuple[tuple[int, int], ...] = ((3, 30), (4, 10), (5, 4)),
    conflicts: int = 20000,
) -> list[Move]:
    """A re-plan of a driver subset that lowers the squared ride-count deviation, or nothing.

    `tries`: (subset size, most solves) pairs, tried in order, the next only when the previous
    found nothing. Stops at the first re-plan found."""
    k = state.problem.n_drivers
    for size, limit in tries:
        size = min(size, k)
        tried = 0
        for drivers in subsets(state, size):
            if tried >= limit:
                break
            if not _may_improve(state, drivers):
                continue  # no receiver in it could take a ride more: a solve finds nothing
            tried += 1
            move = _repair(state, drivers, conflicts)
            if move is not None:
                return [move]
        if size >= k:
            break  # that was the whole day
    return []


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
        out[g] = _serves_at_least(state, g, have + 1)
    return out


def _serves_at_least(
    state: SearchState, g: int, target: int, among: BoolArray | None = None
) -> bool:
    """Whether driver `g` alone could serve `target` rides (see `can_take_more`), taking
    others' rides only `among` these (default: any)."""
    p = state.problem
    owner = state.assignment
    mine = owner == g
    others = (owner >= 0) & ~p.locked & state.solo[:, g]
    if among is not None:
        others &= among
    may = mine | others
    rides = np.nonzero(may)[0]
    if len(rides) < target:
        return False
    rides = rides[np.argsort(p.order[rides], kind="stable")]
    n = len(rides)
    must = p.locked[rides] & mine[rides]
    dur = duration(p, rides)
    latest_start = np.minimum(state.deadline[rides], p.shift_end[g] - dur)
    # j may follow i only if no locked ride of g lies strictly between them (it must be served).
    idx = np.arange(n)
    last_must = np.maximum.accumulate(np.where(must, idx, -1))  # last locked at or before j
    prev_must = np.concatenate(([-1], last_must[:-1]))  # last locked strictly before j
    follow = (idx[:, None] < idx[None, :]) & (idx[:, None] >= prev_must[None, :])
    legs = p.travel.dropoff_to_pickup[np.ix_(rides, rides)]
    first = pickup_at(p, p.shift_start[g] + p.travel.start_to_pickup[g, rides], rides)
    pick = np.where(prev_must < 0, first, np.inf)
    pick = np.where(pick <= latest_start + 1e-6, pick, np.inf)
    done_ok = idx >= last_must[-1]  # a route must have served g's last locked ride
    for c in range(1, target + 1):
        if c == target:
            return bool(np.isfinite(pick[done_ok]).any())
        arrive = np.where(follow, (pick + dur)[:, None] + legs, np.inf).min(axis=0)
        nxt = pickup_at(p, arrive, rides)
        pick = np.where(nxt <= latest_start + 1e-6, nxt, np.inf)
        if not np.isfinite(pick).any():
            return False
    return False


def _may_improve(state: SearchState, drivers: tuple[int, ...]) -> bool:
    """Whether re-planning `drivers` alone could lower their squared deviation: some driver
    at least two below the fullest of them can serve one more of their rides."""
    c = state.counts[list(drivers)]
    among = np.isin(state.assignment, drivers)
    top = int(c.max())
    return any(
        int(c[i]) <= top - 2 and _serves_at_least(state, g, int(c[i]) + 1, among)
        for i, g in enumerate(drivers)
    )


def subsets(
    state: SearchState, size: int = 3, *, pairs: int = 24, pool: int = 6
) -> list[tuple[int, ...]]:
    """Driver subsets worth re-planning, most promising first (see the module docstring).

    Each holds a giver and a receiver at least two rides below it that can take one more
    (`can_take_more`); fullest givers first, then the biggest difference. The other members
    come from the `pool` drivers nearest to both; at most `pairs` (giver, receiver) pairs."""
    c = state.counts
    k = len(c)
    if k < 2:
        return []
    more = can_take_more(state)
    if k <= size:
        return [tuple(range(k))] if more.any() else []
    ends = [
        (-int(c[src]), int(c[sink]) - int(c[src]), src, sink)
        for src in range(k)
        for sink in np.nonzero(more)[0].tolist()
        if c[src] - c[sink] >= 2
    ]
    ends.sort()
    near = _nearness(state)
    movable = ~state.problem.locked
    takers = np.array(
        [
            state.solo[[b for b in state.routes[d] if movable[b]]].sum(axis=0)
            if state.routes[d]
            else np.zeros(k, dtype=np.int64)
            for d in range(k)
        ]
    )  # takers[a, b]: how many of a's movable rides b could serve alone
    ranked: list[tuple[tuple[int, int, float], tuple[int, ...]]] = []
    for neg_src, diff, src, sink in ends[:pairs]:
        closeness = near[src] + near[sink]
        closeness[[src, sink]] = np.inf
        # Members first by how many of the giver's rides they could serve at all (on days
        # with a few wheelchair vans, a full van's rides can only go to the other vans), then
        # by nearness.
        serve = takers[src]
        others = [d for d in np.lexsort((closeness, -serve)).tolist() if d not in (src, sink)]
        nearest = others[: max(pool, size - 2)]
        for mids in combinations(nearest, size - 2):
            key = (neg_src, diff, float(sum(closeness[m] for m in mids)))
            ranked.append((key, tuple(sorted((src, sink, *mids)))))
    ranked.sort()
    return list(dict.fromkeys(s for _, s in ranked))


def _nearness(state: SearchState) -> FloatArray:
    """(K, K): mean empty km from a ride of one route to the nearest ride of the other."""
    p = state.problem
    k = p.n_drivers
    km = p.travel.dropoff_to_pickup_km
    near = np.full((k, k), 1e9)
    for a in range(k):
        ra = state.routes[a]
        if not ra:
            continue
        for b in range(k):
            rb = state.routes[b]
            if a != b and rb:
                near[a, b] = float(np.min(km[np.ix_(ra, rb)], axis=1).mean())
    out: FloatArray = np.minimum(near, near.T)
    return out


def _lean_model() -> Any:
    """A CpModel without the deprecated camelCase aliases that ortools 9.x builds for every
    new model (about 1.5 ms each; the repair builds many small models). ortools is imported
    here, on the first solve, so a worker or `optimize` call that never needs a repair never
    loads it (about 0.8 s and tens of MB)."""
    global _LEAN
    if _LEAN is None:
        from ortools.sat.python import cp_model

        class Lean(cp_model.CpModel):
            def _add_pre_pep8_methods(self) -> None:
                pass

        _LEAN = Lean
    return _LEAN()


_LEAN: Any = None


def _repair(state: SearchState, drivers: tuple[int, ...], conflicts: int) -> Move | None:
    """The least-squares re-plan of `drivers` (fewest rides moved among equals), or None.

    The exact solver's model (`optimizer.exact`) on these drivers' rides: one pickup time per
    ride within [window open, the pass's deadline], each driver's rides in service order
    separated by the ride and the empty leg between them (pairwise, exact under the triangle
    inequality; the validator re-checks the result with the ride model), shifts, capabilities,
    locked rides, ride caps. Times in integer milliminutes, rounded towards feasible.
    """
    p = state.problem
    ds = list(drivers)
    rides = np.array([b for d in ds for b in state.routes[d]], dtype=np.int64)
    rides = rides[np.argsort(p.order[rides], kind="stable")]
    n, kk = len(rides), len(ds)
    if n < 2:
        return None
    now = np.array([ds.index(int(state.assignment[b])) for b in rides], dtype=np.int64)
    dset = np.array(ds, dtype=np.int64)
    allowed = state.solo[np.ix_(rides, dset)] & ~p.locked[rides][:, None]
    allowed[np.arange(n), now] = True
    lo = np.ceil(p.earliest[rides] * _SCALE - 1e-6).astype(np.int64)
    hi = np.maximum(lo, np.floor(state.deadline[rides] * _SCALE + 1e-6).astype(np.int64))
    dur = duration(p, rides)
    first = np.ceil(
        (p.shift_start[dset][None, :] + p.travel.start_to_pickup[np.ix_(dset, rides)].T) * _SCALE
        - 1e-6
    ).astype(np.int64)
    last = np.floor((p.shift_end[dset][None, :] - dur[:, None]) * _SCALE + 1e-6).astype(np.int64)
    late_shift = [any(r == "shift" for r, _ in state.schedules[d].violations) for d in ds]
    need = np.ceil(
        (dur[:, None] + p.travel.dropoff_to_pickup[np.ix_(rides, rides)]) * _SCALE - 1e-6
    ).astype(np.int64)

    from ortools.sat.python import cp_model

    m = _lean_model()
    t = [m.new_int_var(int(lo[i]), int(hi[i]), f"t{i}") for i in range(n)]
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    for i in range(n):
        ks = np.nonzero(allowed[i])[0].tolist()
        for k in ks:
            v = x[i, k] = m.new_bool_var(f"x{i}_{k}")
            m.add(t[i] >= int(first[i, k])).only_enforce_if(v)
            if not late_shift[k]:
                m.add(t[i] <= int(last[i, k])).only_enforce_if(v)
        m.add_exactly_one(x[i, k] for k in ks)
    for a in range(n):
        for b in range(a + 1, n):
            gap = int(need[a, b])
            if lo[b] >= hi[a] + gap:
                continue  # never binding
            apart = lo[a] + gap > hi[b]
            for k in np.nonzero(allowed[a] & allowed[b])[0].tolist():
                if apart:
                    m.add_bool_or([~x[a, k], ~x[b, k]])
                else:
                    m.add(t[b] - t[a] >= gap).only_enforce_if([x[a, k], x[b, k]])
    squares = []
    for k in range(kk):
        count = m.new_int_var(0, n, f"count{k}")
        m.add(count == sum(x[i, k] for i in range(n) if (i, k) in x))
        cap = int(p.max_rides[ds[k]])
        if cap >= 0 and int((now == k).sum()) <= cap:
            m.add(count <= cap)
        sq = m.new_int_var(0, n * n, f"sq{k}")
        m.add_multiplication_equality(sq, [count, count])
        squares.append(sq)
    current = int((np.bincount(now, minlength=kk) ** 2).sum())
    m.add(sum(squares) <= current - 1)
    moved = sum(v for (i, k), v in x.items() if k != now[i])
    m.minimize(sum(squares) * (n + 1) + moved)
    for (i, k), v in x.items():
        m.add_hint(v, int(now[i] == k))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_number_of_conflicts = conflicts
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    steps = [
        Step(int(rides[i]), ds[int(now[i])], ds[k])
        for (i, k), v in x.items()
        if k != now[i] and solver.value(v)
    ]
    if not steps:
        return None
    return Move("compound", tuple(steps))
