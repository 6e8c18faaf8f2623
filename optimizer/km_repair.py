"""Kilometre re-plans: the rides of a few drivers re-planned together, the gap kept.

The cost phase's relocations, swaps and exchanges stop at a local optimum of the operating
cost: a better plan is often several rides away, with every step in between dearer. Here the
rides of a few drivers whose days meet are handed out again, ride by ride in service order,
by a beam search over partial plans: a partial plan is, per driver, its last ride, the time
it is free again, its ride count and workload, and the cost so far (`Objective.km_weight` x
empty km + `late_weight` x minutes late). Each step gives the next ride to every driver that
may take it (capability and the pass's per-booking deadline, shift end, ride cap, locked
rides stay), with the ride model's own recursion (`pickup = max(free + leg, window open)`),
so every partial plan's times are exactly the ride model's. A partial plan that cannot end
`min_saving` below today's km and lateness (its cost so far plus each remaining ride's least
incoming leg) is dropped; when more than `width` remain, the cheapest per (last rides, counts)
and then the `width` cheapest are kept; today's plan always is, so the answer is never worse.
At the end, plans that keep the day's gap and do not raise the subset's sum of squared counts
(counts within its range: the squared deviation cannot get worse) are ranked by the
objective's whole operating cost, workload spread included (`Objective.cost`, the other
drivers as they are).

Pure numpy, and in `optimizer/_kernels.c` with the same arithmetic and choices: the beam's
loop (`_kernels.beam`) and the whole re-plan and bound (`_kernels.replan`: the set-up on the
problem's own arrays, the beam and the choice; it serves when built). No solver import, the
same answer on any machine (the effort is the beam width and the number of subsets, not
time). Ruin and recreate calls this ~1,000 times a pass: with the set-up in numpy, 75 % of
its time was Python around the beam (100x13 patient days, cProfile); `replan` took the
phase from ~175 to ~67 ms of CPU there, with the same decisions. The re-plan is
a candidate like any other: the validator (`SearchState.trial`) checks it on the whole plan
and the audit lists its steps.
"""

from __future__ import annotations

import numpy as np

from optimizer.kernels import compiled
from optimizer.moves import Move, Step
from optimizer.objective import Objective
from optimizer.problem import BoolArray, FloatArray, IntArray, Problem
from optimizer.ride_model import duration
from optimizer.search_state import SearchState

__all__ = ["BOUND_COST", "REPLAN_COST", "km_bound", "km_replan", "km_subsets", "pair_promise"]

_EPS = 1e-6  # as the validator's comparisons (`feasibility`, `search_state`)
# A re-plan's fixed cost and a bound's, in partial-plan expansions (about 3 us each in the
# numpy beam; setting up a re-plan took about 1 ms, a bound about 0.15 ms, on one core): the
# callers' deterministic work budgets count them so. The compiled re-plan (`_kernels.replan`)
# expands a partial plan in ~50 ns and sets a re-plan up in a few us (a ruin-and-recreate
# round, Python included, ~80 us at 100x13): the same budgets buy the same decisions, sooner.
REPLAN_COST = 300
BOUND_COST = 50


def km_subsets(
    state: SearchState, size: int, promise: FloatArray | None = None
) -> list[tuple[int, ...]]:
    """Driver subsets of `size` whose days meet, most promising first.

    Promise of a pair (a, b): how many empty km the rides of each could save by following a
    ride of the other instead of their current predecessor (each ride's incoming leg minus the
    shortest leg from an earlier ride of the other driver that could still reach it in time),
    summed over both. A triple joins a pair's best third driver by the same measure.
    `promise`: `pair_promise(state)` when the caller has it."""
    k = state.problem.n_drivers
    if k < size or size < 2:
        return []
    if size == k:
        return [tuple(range(k))]
    if promise is None:
        promise = pair_promise(state)
    pairs: list[tuple[int, ...]] = [
        (a, b) for a in range(k) for b in range(a + 1, k) if promise[a, b] > 0
    ]
    pairs.sort(key=lambda ab: (-promise[ab[0], ab[1]], ab))
    if size == 2:
        return pairs
    # Grow each pair by the drivers whose days meet theirs most, one at a time.
    out: dict[tuple[int, ...], float] = {}
    for a, b in pairs:
        members = [a, b]
        score = float(promise[a, b])
        while len(members) < size:
            gain = promise[members].sum(axis=0)
            gain[members] = -np.inf
            c = int(np.argmax(gain))
            if gain[c] <= 0:
                break
            members.append(c)
            score += float(gain[c])
        if len(members) == size:
            out.setdefault(tuple(sorted(members)), score)
    return sorted(out, key=lambda s: (-out[s], s))


def pair_promise(state: SearchState) -> FloatArray:
    """(K, K), symmetric: the km each pair's rides could save by trading predecessors.

    One matrix over all assigned rides (which could follow which: drop-off at today's time,
    then the leg, before the deadline), reduced per driver with `reduceat`."""
    p = state.problem
    k = p.n_drivers
    out = np.zeros((k, k))
    routes = [(d, r) for d, r in enumerate(state.routes) if r]
    if len(routes) < 2:
        return out
    rides = np.array([b for _, r in routes for b in r], dtype=np.int64)
    owner = np.array([d for d, r in routes for _ in r], dtype=np.int64)
    sizes = np.array([len(r) for _, r in routes], dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    pick = np.array([t for d, _ in routes for t in state.schedules[d].pickup_at])
    incoming = p.travel.dropoff_to_pickup_km[rides[:-1], rides[1:]]
    incoming = np.concatenate(([0.0], incoming))
    incoming[starts] = p.travel.start_to_pickup_km[owner[starts], rides[starts]]
    free = pick + duration(p, rides)
    arrive = free[:, None] + p.travel.dropoff_to_pickup[np.ix_(rides, rides)]
    reach = arrive <= state.deadline[rides][None, :] + _EPS
    legs = np.where(reach, p.travel.dropoff_to_pickup_km[np.ix_(rides, rides)], np.inf)
    least = np.minimum.reduceat(legs, starts, axis=0)  # (drivers with rides, rides)
    saving = np.maximum(incoming[None, :] - least, 0.0)
    per_pair = np.add.reduceat(saving, starts, axis=1)  # [from b's rides, into a's rides]
    used = np.array([d for d, _ in routes], dtype=np.int64)
    out[np.ix_(used, used)] = per_pair.T
    np.fill_diagonal(out, 0.0)
    sym: FloatArray = out + out.T
    return sym


def km_replan(
    state: SearchState,
    drivers: tuple[int, ...],
    objective: Objective,
    width: int = 48,
    min_saving: float = 0.0,
    worse: float = 0.0,
) -> tuple[Move | None, int]:
    """The cheapest re-plan of `drivers`' rides the beam finds (see the module docstring),
    if it moves a ride and costs less than today's plan, else None; and the beam's work
    (partial plans x drivers it expanded: deterministic, for the caller's budget).

    A partial plan whose km and lateness cost so far plus the least km the rides left could
    cost (`_least_incoming`) is not `min_saving` below today's is dropped: it cannot lead to
    a plan that saves that much on km and lateness."""
    if compiled is not None and hasattr(compiled, "replan"):
        return _replan_compiled(state, drivers, objective, width, min_saving, worse)
    p = state.problem
    ds = list(drivers)
    kk = len(ds)
    rides = np.array([b for d in ds for b in state.routes[d]], dtype=np.int64)
    n = len(rides)
    if n < 2:
        return None, 0
    rides = rides[np.argsort(p.order[rides], kind="stable")]
    dset = np.array(ds, dtype=np.int64)
    inside = np.full(p.n_drivers, -1, dtype=np.int64)
    inside[dset] = np.arange(kk)
    now = inside[state.assignment[rides]]  # each ride's driver's place in `ds`
    allowed = state.solo[rides[:, None], dset] & ~p.locked[rides][:, None]
    allowed[np.arange(n), now] = True
    if int(allowed.sum()) == n:
        return None, 0  # no ride may change driver
    km_w, late_w = objective.km_weight, objective.late_weight
    least = _least_incoming(state, rides, dset, allowed)
    rest = km_w * np.concatenate((np.cumsum(least[::-1])[::-1], [0.0]))  # from ride i on
    today = km_w * float(state.deadhead[ds].sum()) + late_w * float(state.lateness[ds].sum())
    ceiling = today - min_saving + max(worse, 0.0) + 1e-9
    earliest = p.earliest[rides]
    latest = p.latest[rides]
    deadline = state.deadline[rides] + _EPS
    dur = duration(p, rides)
    # Legs into each ride: from a ride's drop-off (rows 0..n-1), from a driver's start (n + k).
    leg_min = np.concatenate(
        (
            p.travel.dropoff_to_pickup[rides[:, None], rides],
            p.travel.start_to_pickup[dset[:, None], rides],
        )
    )
    leg_km = np.concatenate(
        (
            p.travel.dropoff_to_pickup_km[rides[:, None], rides],
            p.travel.start_to_pickup_km[dset[:, None], rides],
        )
    )
    shift_end = p.shift_end[dset] + _EPS
    counts_now = np.bincount(now, minlength=kk)
    cap = p.max_rides[dset].astype(np.int64)
    cap = np.where((cap < 0) | (counts_now > cap), n, cap)  # no cap, or already over it
    for k, d in enumerate(ds):
        if any(r == "shift" for r, _ in state.schedules[d].violations):
            shift_end[k] = np.inf  # a shift the input already overran is not judged here
    c_lo, c_hi = int(counts_now.min()), int(counts_now.max())

    tabs = (earliest, latest, deadline, dur, leg_min, leg_km, shift_end, cap, allowed, now, rest)
    start = p.shift_start[dset].astype(float)
    limits = (width, km_w, late_w, ceiling, c_lo, c_hi)
    # A build from before `beam` existed (a checkout not rebuilt) runs the numpy beam.
    fast = compiled is not None and hasattr(compiled, "beam")
    found = (_beam_compiled if fast else _beam)(n, kk, start, tabs, limits)
    parents, chosen, cnt, work, cost, inc, effort = found
    if inc < 0:
        return None, effort  # today's plan fell out of the model (it should not)
    # Whole operating cost of each complete plan whose counts keep the day's gap (the
    # fairness phase's verdict stands) and do not raise the squared deviation (counts within
    # the subset's range, sum of squares not above today's: the total is fixed).
    others = state.counts[inside < 0]
    top = np.maximum(cnt.max(axis=1), others.max(initial=-1))
    bottom = np.minimum(cnt.min(axis=1), others.min(initial=n + 1))
    ok = (
        (cnt.min(axis=1) >= c_lo)
        & ((cnt**2).sum(axis=1) <= int((counts_now**2).sum()))
        & (top - bottom == state.gap)
    )
    outside = state.workload[inside < 0]
    w_hi = np.maximum(work.max(axis=1), outside.max() if len(outside) else -np.inf)
    w_lo = np.minimum(work.min(axis=1), outside.min() if len(outside) else np.inf)
    spread = np.maximum(w_hi - w_lo - objective.spread_band_minutes, 0.0)
    total = np.where(ok, cost + objective.spread_weight * spread, np.inf)
    limit = total[inc] - _EPS
    if worse > 0:  # an annealing step: the best plan but today's, if not `worse` dearer
        limit = total[inc] + worse
        total[inc] = np.inf
    best = int(np.argmin(total))
    if not total[best] < limit:
        return None, effort
    plan = np.empty(n, dtype=np.int64)
    row = best
    for i in range(n - 1, -1, -1):
        plan[i] = chosen[i][row]
        row = int(parents[i][row])
    steps = [
        Step(int(rides[i]), ds[int(now[i])], ds[int(plan[i])])
        for i in range(n)
        if plan[i] != now[i]
    ]
    return (Move("compound", tuple(steps)) if steps else None), effort


_BeamTables = tuple[
    FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray,
    IntArray, BoolArray, IntArray, FloatArray,
]  # fmt: skip
_BeamOut = tuple[list[IntArray], list[IntArray], IntArray, FloatArray, FloatArray, int, int]


def _beam(
    n: int,
    kk: int,
    start: FloatArray,
    tabs: _BeamTables,
    limits: tuple[int, float, float, float, int, int],
) -> _BeamOut:
    """`km_replan`'s beam over the `n` rides in service order (see the module docstring):
    per ride, the kept partial plans' parents and drivers, then the last plans' counts,
    workloads and costs, today's row among them (-1: it fell out) and the work done.
    `tabs`: per ride its window, deadline (with the validator's epsilon), duration, the legs
    into it, per driver shift end and ride cap, the allowed (ride, driver) pairs, today's
    driver per ride and the least km the rides from each on could cost."""
    earliest, latest, deadline, dur, leg_min, leg_km, shift_end, cap, allowed, now, rest = tabs
    width, km_w, late_w, ceiling, c_lo, c_hi = limits
    earliest, latest, deadline, dur = (x.tolist() for x in (earliest, latest, deadline, dur))
    last = (n + np.arange(kk, dtype=np.int64))[None, :]  # each driver's start
    free = start[None, :]
    cnt = np.zeros((1, kk), dtype=np.int64)
    work = np.zeros((1, kk))
    cost = np.zeros(1)
    inc = 0  # the row of today's plan
    effort = 0
    parents: list[IntArray] = []
    chosen: list[IntArray] = []
    for i in range(n):
        # Every partial plan x every driver at once: (rows, drivers) arrays.
        minutes = leg_min[last, i]
        km = leg_km[last, i]
        pick = np.maximum(free + minutes, earliest[i])
        ok = (pick <= deadline[i]) & (pick + dur[i] <= shift_end[None, :]) & (cnt < cap[None, :])
        ok &= allowed[i][None, :]
        par, dch = np.nonzero(ok)
        effort += len(par)
        hit = np.nonzero((par == inc) & (dch == now[i]))[0]
        if len(hit) == 0:
            return parents, chosen, cnt, work, cost, -1, effort  # fell out of the model
        pick, km, minutes = pick[par, dch], km[par, dch], minutes[par, dch]
        rows = np.arange(len(par))
        last, free, cnt, work = last[par], free[par], cnt[par], work[par]
        last[rows, dch] = i
        free[rows, dch] = pick + dur[i]
        cnt[rows, dch] += 1
        work[rows, dch] += minutes + dur[i]
        cost = cost[par] + km_w * km + late_w * np.maximum(pick - latest[i], 0.0)
        # Counts that cannot end in the subset's range are dropped, and plans that cannot
        # end cheap enough.
        left = n - i - 1
        keep = (cnt.max(axis=1) <= c_hi) & (np.maximum(c_lo - cnt, 0).sum(axis=1) <= left)
        keep &= cost + rest[i + 1] <= ceiling
        keep[hit[0]] = True
        keep = np.nonzero(keep)[0]
        if len(keep) > width:  # else every partial plan fits: duplicates cost a few rows
            keep = _best_per_key(keep, last, cnt, cost, width, int(hit[0]))
        inc = int(np.nonzero(keep == hit[0])[0][0])
        last, free, cnt, work, cost = last[keep], free[keep], cnt[keep], work[keep], cost[keep]
        parents.append(par[keep])
        chosen.append(dch[keep])
    return parents, chosen, cnt, work, cost, inc, effort


def _beam_compiled(
    n: int,
    kk: int,
    start: FloatArray,
    tabs: _BeamTables,
    limits: tuple[int, float, float, float, int, int],
) -> _BeamOut:
    """`_beam` by `_kernels.beam` (the same arithmetic, choices and order)."""
    assert compiled is not None
    earliest, latest, deadline, dur, leg_min, leg_km, shift_end, cap, allowed, now, rest = tabs
    width, km_w, late_w, ceiling, c_lo, c_hi = limits
    parents = np.empty((n, width), dtype=np.int64)
    chosen = np.empty((n, width), dtype=np.int64)
    rows = np.empty(n, dtype=np.int64)
    cnt = np.empty((width, kk), dtype=np.int64)
    work = np.empty((width, kk))
    cost = np.empty(width)
    c = np.ascontiguousarray
    kept, inc, effort = compiled.beam(
        n, kk, width, float(km_w), float(late_w), float(ceiling), c_lo, c_hi,
        c(leg_min, dtype=np.float64), c(leg_km, dtype=np.float64),
        c(earliest, dtype=np.float64), c(latest, dtype=np.float64),
        c(deadline, dtype=np.float64), c(dur, dtype=np.float64), c(start, dtype=np.float64),
        c(shift_end, dtype=np.float64), c(cap, dtype=np.int64), c(allowed, dtype=np.bool_),
        c(now, dtype=np.int64), c(rest, dtype=np.float64),
        parents, chosen, rows, cnt, work, cost,
    )  # fmt: skip
    if kept < 0:
        return [], [], cnt[:0], work[:0], cost[:0], -1, effort
    per = rows.tolist()
    return (
        [parents[i, : per[i]] for i in range(n)],
        [chosen[i, : per[i]] for i in range(n)],
        cnt[:kept],
        work[:kept],
        cost[:kept],
        inc,
        effort,
    )


def _best_per_key(
    rows: IntArray, last: IntArray, cnt: IntArray, cost: FloatArray, width: int, pin: int
) -> IntArray:
    """Of `rows`, the cheapest per (last rides, counts), then the `width` cheapest; `pin`
    always (today's plan)."""
    order = rows[np.argsort(cost[rows], kind="stable")]
    digits = np.concatenate([last[order] + 1, cnt[order]], axis=1)
    base = int(digits.max(initial=0)) + 1
    if base ** digits.shape[1] < 2**62:  # one integer per key: a 1-D unique is much faster
        keys = digits @ (base ** np.arange(digits.shape[1], dtype=np.int64))
        _, first = np.unique(keys, return_index=True)
    else:
        _, first = np.unique(digits, axis=0, return_index=True)
    picked = order[np.sort(first)][:width]  # cheapest first
    if pin not in picked:
        picked = np.append(picked[: width - 1] if len(picked) >= width else picked, pin)
    return picked


def km_bound(state: SearchState, drivers: tuple[int, ...], objective: Objective) -> float:
    """A lower bound on the operating cost `km_replan` could save on `drivers` (km units):
    today's km and lateness cost minus, per ride, its cheapest possible empty leg in (from a
    start of a driver that may take it, or from an earlier ride of the subset that could
    still reach it in time, which also may go to a driver that may take both). Every plan
    has one leg into each ride, so no re-plan saves more: below `min_improvement`, skip."""
    if compiled is not None and hasattr(compiled, "replan"):
        bound: float = compiled.replan(0, *_replan_args(state, drivers, objective, 1, 0.0, 0.0))
        return bound
    p = state.problem
    ds = list(drivers)
    rides = np.array([b for d in ds for b in state.routes[d]], dtype=np.int64)
    if len(rides) < 2:
        return 0.0
    rides = rides[np.argsort(p.order[rides], kind="stable")]
    dset = np.array(ds, dtype=np.int64)
    allowed = state.solo[rides[:, None], dset] & ~p.locked[rides][:, None]
    allowed |= state.assignment[rides][:, None] == dset[None, :]
    least = _least_incoming(state, rides, dset, allowed)
    today = sum(float(state.deadhead[d]) for d in ds)
    late = sum(float(state.lateness[d]) for d in ds)
    return objective.km_weight * (today - float(least.sum())) + objective.late_weight * late


def _least_incoming(
    state: SearchState, rides: IntArray, dset: IntArray, allowed: BoolArray
) -> FloatArray:
    """Per ride (in service order), the shortest empty leg any plan of these drivers could
    bring it by: from the start of a driver that may take it, or from an earlier ride that
    could still reach it in time and shares a driver that may take both."""
    p = state.problem
    n = len(rides)
    start = np.where(allowed.T, p.travel.start_to_pickup_km[dset[:, None], rides], np.inf)
    # i may precede j: from i's earliest drop-off, j's pickup before its deadline.
    free_at = p.earliest[rides] + duration(p, rides)
    arrive = free_at[:, None] + p.travel.dropoff_to_pickup[rides[:, None], rides]
    reach = arrive <= state.deadline[rides][None, :] + _EPS
    reach &= np.arange(n)[:, None] < np.arange(n)[None, :]  # i before j in service order
    reach &= (allowed.astype(np.int64) @ allowed.T.astype(np.int64)) > 0
    legs = np.where(reach, p.travel.dropoff_to_pickup_km[rides[:, None], rides], np.inf)
    least: FloatArray = np.minimum(start.min(axis=0), legs.min(axis=0))
    return least


def _replan_compiled(
    state: SearchState,
    drivers: tuple[int, ...],
    objective: Objective,
    width: int,
    min_saving: float,
    worse: float,
) -> tuple[Move | None, int]:
    """`km_replan` whole in `_kernels.replan` (set-up, beam and choice: the same arithmetic,
    choices and order as the numpy code above, on the problem's own arrays)."""
    assert compiled is not None
    effort, steps = compiled.replan(
        1, *_replan_args(state, drivers, objective, width, min_saving, worse)
    )
    if steps is None:
        return None, effort
    return Move("compound", tuple(Step(b, a, c) for b, a, c in steps)), effort


def _replan_args(
    state: SearchState,
    drivers: tuple[int, ...],
    objective: Objective,
    width: int,
    min_saving: float,
    worse: float,
) -> tuple[object, ...]:
    """`_kernels.replan`'s arguments after its mode (see there)."""
    p = state.problem
    t = p.memo("km_replan_arrays", _problem_arrays)
    c = np.ascontiguousarray
    overran = np.array(
        [any(r == "shift" for r, _ in state.schedules[d].violations) for d in drivers],
        dtype=np.bool_,
    )
    return (
        len(drivers), width, float(objective.km_weight), float(objective.late_weight),
        float(objective.spread_weight), float(objective.spread_band_minutes),
        float(min_saving), float(worse), state.gap,
        np.array(drivers, dtype=np.int64), t[0], c(state.assignment, dtype=np.int64), t[1],
        c(state.solo, dtype=np.bool_), t[2], t[3], t[4], c(state.deadline, dtype=np.float64),
        *t[5:], overran, c(state.counts, dtype=np.int64), c(state.workload, dtype=np.float64),
        c(state.deadhead, dtype=np.float64), c(state.lateness, dtype=np.float64),
    )  # fmt: skip


def _problem_arrays(p: Problem) -> tuple[np.ndarray, ...]:
    """The problem's arrays `_kernels.replan` reads, contiguous and of its dtypes (kept on the
    problem: it never changes)."""
    c = np.ascontiguousarray
    tr = p.travel
    return (
        c(p.service_rank, dtype=np.int64), c(p.locked, dtype=np.bool_),
        c(p.earliest, dtype=np.float64), c(p.latest, dtype=np.float64),
        c(duration(p), dtype=np.float64),
        c(tr.dropoff_to_pickup, dtype=np.float64), c(tr.dropoff_to_pickup_km, dtype=np.float64),
        c(tr.start_to_pickup, dtype=np.float64), c(tr.start_to_pickup_km, dtype=np.float64),
        c(p.shift_start, dtype=np.float64), c(p.shift_end, dtype=np.float64),
        c(p.max_rides, dtype=np.int64),
    )  # fmt: skip
