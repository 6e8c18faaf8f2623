"""A lower bound on the least deadhead of any plan at a given ride-count gap (Lagrangian).

CP-SAT's own bound on the lexicographic model (`optimizer.exact.solve_lexicographic`) is weak
from about 60 bookings up, and a path cover that ignores the drivers' ride counts is weaker
still: the gap forces every driver to take about N/K rides, so rides cannot all follow their
cheapest predecessor. This bound keeps exactly that structure.

Relax "every ride is served once" with a multiplier `lam[b]` per ride. What remains splits per
driver: each driver picks one route (rides in service order, each reachable in time from the
one before, within its shift, the pass's per-booking deadlines, capabilities, locked rides,
its ride cap) at the reduced cost `km - sum(lam)`, and the drivers' ride counts must sum to N
and lie within one band `[m, m + gap]`. For any `lam`,

    L(lam) = sum(lam) + min over counts in a band summing to N of sum_k f_k(count_k)

is at most the deadhead of every plan at that gap (any plan is such a choice of routes, and
its multiplier terms cancel), where `f_k(j)` is driver k's least reduced cost of a route of j
rides. `f_k` is a dynamic programme over the rides in service order, per ride count and
pickup-time bucket (each ride's window cut in a few equal parts); its route set is a superset
of the real routes (each (ride, count, bucket) keeps the earliest pickup of any route reaching
it there and the cheapest cost of any, possibly of two different routes), so the bound stays
valid; the buckets keep that merge from losing much (one label per (ride, count) was 16 % below
a proven minimum on a patient 40x6 day, four buckets 0.2 %). A subgradient method raises `L`;
the best value seen is the bound.

A second pass repeats this with finer buckets (8), starting from the first pass's best
multipliers, and the bound is the better of the two. Each pass's value is a bound on its own
(its routes are a superset of the real ones whatever the bucket count, and `L(lam)` bounds
every plan for any `lam`), so taking the larger needs nothing more; it never lowers the
bound. What it buys is small, because the bound is close to what this relaxation can give:
on patient 100x13 days the best `L` matches the LP value of the set-partitioning master
(column generation over the same routes) to 0.03 %, and 8 buckets add 0.3-0.5 % over 4
(16 and 32 buckets add nothing more on a 40x6 day). The rest of the distance to the best
plans is the master's integrality gap (7 % on a patient 40x6 day whose minimum CP-SAT
proves), which no choice of multipliers closes; cuts that see it (subset-row inequalities,
violated by the LP optimum there) would need a route state per cut in the DP.

Given a known plan's deadhead `U`, reduced-cost fixing marks the (ride, driver) pairs that no
plan with deadhead <= `U` can use: the bound with ride b forced onto driver k (cheapest prefix
to b plus cheapest continuation from b's bucket, against each driver's unforced best) exceeds
`U`. `optimizer.exact` drops them from its model.

Times and kilometres are the ride model's (`ride_model.leg`, `duration`), with the same
tolerances as the validator (`_EPS`) widened, never narrowed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizer.band_knapsack import band_knapsack
from optimizer.feasibility import deadlines, schedule_all
from optimizer.moves import solo_feasible
from optimizer.problem import BoolArray, FloatArray, IntArray, Problem
from optimizer.ride_model import duration

__all__ = ["DeadheadBound", "deadhead_lower_bound"]

_EPS = 1e-6
_INF = np.inf
_PATIENCE = 50  # subgradient steps without a better bound before the step halves
_MAX_TABLE = 12e6  # most extension-table entries (floats) before fewer time buckets
_MAX_FINE_TABLE = 48e6  # the same for the finer second pass (about 400 MB at most)
_FINE_STEP = 0.25  # its first step factor: it starts near the coarse optimum


@dataclass(frozen=True, slots=True)
class DeadheadBound:
    """The Lagrangian bound's answer."""

    bound_km: float
    """No plan with this gap (adding no violation to the input) has less deadhead."""
    iterations: int
    """Subgradient iterations run."""
    feasible_routes: bool
    """False when some band admits no choice of routes at all (then `bound_km` is +inf:
    no plan has this gap)."""
    excluded: BoolArray | None = None
    """(N, K), with `upper_km` given: True where no plan at this gap with booking b on
    driver k has deadhead <= `upper_km` (reduced-cost fixing: the bound with b forced onto
    k already exceeds it). A solver proving that nothing beats `upper_km` may drop them."""
    late_weight: float = 0.0
    """With `max_lateness_minutes`: the multiplier on the plan's total lateness (km per
    minute) at the best bound (0: the cap did not bind)."""


def allowed_drivers(
    problem: Problem, assignment: IntArray
) -> tuple[BoolArray, FloatArray, set[int], set[int]]:
    """As `optimizer.exact`'s model: (N, K) which driver may take which assigned ride, the
    per-booking deadline, the drivers whose shift and whose ride cap the input already broke
    (not judged), from the input's tolerated violations."""
    n, k_count = problem.n_bookings, problem.n_drivers
    scheds = schedule_all(problem, assignment)
    seen: set[tuple[str, int]] = set()
    for s in scheds:
        seen |= s.violations
    cap_ok = {b for r, b in seen if r == "capability"}
    shift_ok = {d for r, d in seen if r == "shift"}
    limit_ok = {d for r, d in seen if r == "driver_limit"}
    upper = deadlines(problem, scheds)
    solo = solo_feasible(problem, upper)
    allowed = np.zeros((n, k_count), dtype=bool)
    for b in np.nonzero(assignment >= 0)[0].tolist():
        if problem.locked[b]:
            allowed[b, assignment[b]] = True
            continue
        reach = solo[b] | (b in cap_ok)
        if b not in cap_ok:
            reach &= problem.capable[b]
        allowed[b] = reach
        allowed[b, assignment[b]] = True
    return allowed, upper, shift_ok, limit_ok


def deadhead_lower_bound(
    problem: Problem,
    assignment: IntArray,
    gap: int,
    *,
    upper_km: float | None = None,
    iterations: int = 1000,
    buckets: int = 4,
    fine_buckets: int = 8,
    fine_iterations: int = 600,
    time_limit_s: float | None = None,
    max_lateness_minutes: float | None = None,
) -> DeadheadBound:
    """A valid lower bound on the least deadhead (km) of any plan at ride-count gap `gap`
    that adds no violation to `assignment` (see the module docstring).

    `upper_km`: the deadhead of a known plan at that gap (steers the step size; the bound
    is valid whatever it is). `iterations`: subgradient steps (deterministic). `buckets`:
    time buckets per ride (more: tighter and slower; 1: one label per (ride, count)); fewer
    on big days, to keep the extension tables under about 100 MB. `fine_buckets`,
    `fine_iterations`: the second pass (0 or at most `buckets`: none), fewer buckets where
    its tables would pass about 400 MB; at 100x13 it costs about 45 s CPU more (8 buckets,
    600 steps). `time_limit_s`: stop the subgradient steps after this much CPU time, both
    passes together (the bound so far is as valid).
    `max_lateness_minutes`: bound only the plans whose total lateness (minutes picked up
    after the windows closed, summed over the bookings) is at most this: a second multiplier
    `mu >= 0` prices each relaxed route's lateness, and `L(lam, mu) - mu x cap` is the bound.
    A relaxed route's lateness is taken at its earliest pickups, never above a real route's,
    so the relaxation stays valid."""
    started = time.process_time()
    p = problem
    setup = _setup(p, assignment, gap)
    if setup is None:
        return DeadheadBound(0.0, 0, True)
    day, bands, top = setup
    if not bands:
        return DeadheadBound(_INF, 0, False)
    rides, cap = day[0], day[4]
    n, kk = len(rides), p.n_drivers
    tables = _build_tables(p, day, top, buckets, max_lateness_minutes)
    capped = max_lateness_minutes is not None
    cap_late = float(max_lateness_minutes or 0.0)
    ascend = (bands, gap, cap, cap_late, upper_km, started, time_limit_s)
    run = _ascend(tables, ascend, _least_incoming(tables), 0.0, iterations, 1.0)
    if run is None:
        return DeadheadBound(_INF, 1, False)
    best_bound, best_lam, best_mu, done = run
    # Finer buckets from the coarse multipliers: a tighter relaxation, and a few steps from
    # near its optimum instead of a whole ascent. Either value is a bound; the best is kept.
    fine = min(int(fine_buckets), _buckets_that_fit(kk, top, n, _MAX_FINE_TABLE))
    # (Not where the first pass already meets the known plan: nothing left to prove.)
    room = upper_km is None or best_bound < upper_km - 1e-3 * max(1.0, abs(upper_km))
    if room and fine > tables.shape[2] and not _out_of_time(started, time_limit_s):
        fine_tables = _build_tables(p, day, top, fine, max_lateness_minutes, _MAX_FINE_TABLE)
        more = _ascend(fine_tables, ascend, best_lam, best_mu, fine_iterations, _FINE_STEP)
        if more is not None and more[0] > best_bound:
            tables = fine_tables
            best_bound, best_lam, best_mu = more[0], more[1], more[2]
        done += more[3] if more is not None else 0
    # Floating sums: shave a hair so rounding never lifts the bound above a true minimum.
    bound = float(best_bound) - 1e-6 * max(1.0, abs(best_bound))
    excluded = None
    if upper_km is not None and np.isfinite(bound):
        excluded = _fixing(p.n_bookings, rides, tables, (best_lam, best_mu), cap, bound, upper_km)
    return DeadheadBound(bound, done, True, excluded, best_mu if capped else 0.0)


_Day = tuple[IntArray, BoolArray, FloatArray, set[int], IntArray]


def _setup(p: Problem, assignment: IntArray, gap: int) -> tuple[_Day, list[int], int] | None:
    """The relaxation's day: (the assigned rides in service order, (n, K) allowed drivers,
    per-booking deadlines, drivers whose shift the input broke, each driver's ride cap), the
    bands (least counts m: every driver takes m .. m + gap rides; empty: no plan has this
    gap) and the most rides any driver may take; None without rides or drivers."""
    allowed_all, upper, shift_ok, limit_ok = allowed_drivers(p, assignment)
    rides = np.nonzero(assignment >= 0)[0]
    rides = rides[np.argsort(p.order[rides], kind="stable")]
    n, kk = len(rides), p.n_drivers
    if n == 0 or kk == 0:
        return None
    cap = np.array(
        [
            n if (int(p.max_rides[k]) < 0 or k in limit_ok) else int(p.max_rides[k])
            for k in range(kk)
        ],
        dtype=np.int64,
    )
    bands = [m for m in range(0, n // kk + 1) if kk * m <= n <= kk * (m + gap)]
    top = min(int(cap.max()), bands[-1] + gap, n) if bands else 0
    return (rides, allowed_all[rides], upper, shift_ok, cap), bands, top


def _buckets_that_fit(kk: int, top: int, n: int, most: float) -> int:
    """The most time buckets (at least 1) whose extension tables stay under `most` floats."""
    nb = 1
    while (nb + 1) ** 2 * kk * top * n * n / 2 <= most:
        nb += 1
    return nb


def _out_of_time(started: float, limit: float | None) -> bool:
    return limit is not None and time.process_time() - started > limit


@dataclass(frozen=True, slots=True)
class _Tables:
    """The relaxed routes of one time-bucket resolution, fixed whatever the multipliers."""

    first_km: FloatArray
    """(K, n): km from each driver's start to each ride as its first (inf: not allowed)."""
    first_bucket: IntArray
    """(K, n): the bucket that first pickup lands in."""
    ext: list[list[FloatArray]]
    """ext[c][b]: (K, c * nb, top) km of each (predecessor, its bucket, count) -> (c, b)."""
    late: list[FloatArray] | None
    """With a lateness cap: late[0] (K, n) minutes late at each first pickup, late[c + 1]
    (K, c * nb, top) at c after each extension."""
    shape: tuple[int, int, int, int]
    """Rides, drivers, time buckets, most rides a driver may take."""
    legs: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, BoolArray]
    """dur, leg minutes, leg km, deadline, shift end, allowed (for the backward pass)."""
    earliest: FloatArray
    width: FloatArray
    """Each ride's bucket width (minutes)."""

    def bucket_of(self, c: int, pick: FloatArray) -> IntArray:
        nb = self.shape[2]
        out: IntArray = np.clip(
            ((pick - self.earliest[c]) // self.width[c]).astype(np.int64), 0, nb - 1
        )
        return out


def _build_tables(
    p: Problem,
    day: _Day,
    top: int,
    buckets: int,
    max_lateness_minutes: float | None,
    most: float | None = None,
) -> _Tables:
    """Earliest pickup per (driver, ride, time bucket, count) over the relaxed routes, and
    which (predecessor, its bucket, count) -> (ride, bucket) extensions exist. A ride's
    pickup window [open, deadline] is cut into `buckets` equal parts (fewer if the tables
    would pass `most` floats); a route is kept as (earliest pickup, least cost) of the
    routes in its bucket, so the merge loses less than one label per (ride, count) would."""
    rides, allowed, upper, shift_ok, cap = day
    n, kk = len(rides), p.n_drivers
    earliest = p.earliest[rides].astype(float)
    latest = p.latest[rides].astype(float)
    capped = max_lateness_minutes is not None
    deadline = upper[rides].astype(float) + _EPS
    if max_lateness_minutes is not None:
        # No booking of a plan that late in all is later than that alone: the tighter
        # deadlines cut the relaxed routes (the multiplier does the rest).
        deadline = np.minimum(deadline, latest + float(max_lateness_minutes) + _EPS)
    dur = duration(p, rides).astype(float)
    leg_min = p.travel.dropoff_to_pickup[np.ix_(rides, rides)]
    leg_km = p.travel.dropoff_to_pickup_km[np.ix_(rides, rides)]
    start_min = p.travel.start_to_pickup[:, rides]  # (K, n)
    start_km = p.travel.start_to_pickup_km[:, rides]
    shift_end = np.where(
        np.isin(np.arange(kk), list(shift_ok)), _INF, p.shift_end.astype(float) + _EPS
    )
    nb = min(max(1, int(buckets)), _buckets_that_fit(kk, top, n, most or _MAX_TABLE))
    width = np.maximum(deadline - earliest, 1e-9) / nb
    out = _Tables(
        np.where(allowed.T, start_km, _INF),
        np.zeros((kk, n), dtype=np.int64),
        [],
        [np.zeros((kk, n))] if capped else None,
        (n, kk, nb, top),
        (dur, leg_min, leg_km, deadline, shift_end, allowed),
        earliest,
        width,
    )
    late: list[FloatArray] = out.late if out.late is not None else [np.zeros((kk, n))]
    first_km, first_bucket, ext = out.first_km, out.first_bucket, out.ext
    t_at = np.full((kk, n, nb, top + 1), _INF)
    counts_ok = cap[:, None, None] >= np.arange(1, top + 1)[None, None, :]  # (K, 1, top)
    for c in range(n):
        ok_k = allowed[c]  # (K,)
        arrive0 = p.shift_start.astype(float) + start_min[:, c]
        pick0 = np.maximum(arrive0, earliest[c])
        ok0 = ok_k & (pick0 <= deadline[c]) & (pick0 + dur[c] <= shift_end)
        first_km[~ok0, c] = _INF
        b0 = out.bucket_of(c, pick0)
        first_bucket[:, c] = b0
        late[0][:, c] = np.maximum(pick0 - latest[c], 0.0)
        t_at[np.nonzero(ok0)[0], c, b0[ok0], 1] = pick0[ok0]
        if c == 0:
            ext.append([np.full((kk, 0, top), _INF)] * nb)
            late.append(np.zeros((kk, 0, top), dtype=np.float32))
            continue
        src = t_at[:, :c, :, :top].reshape(kk, c * nb, top)
        hop = np.repeat(dur[:c] + leg_min[:c, c], nb)  # per (a, bucket of a)
        pick = np.maximum(src + hop[None, :, None], earliest[c])
        ok = (pick <= deadline[c]) & (pick + dur[c] <= shift_end[:, None, None])
        ok &= ok_k[:, None, None] & counts_ok
        land = out.bucket_of(c, np.where(ok, pick, earliest[c]))
        if capped:
            late.append(np.maximum(pick - latest[c], 0.0).astype(np.float32))
        km = np.repeat(leg_km[:c, c], nb)[None, :, None]
        into = []
        for b in range(nb):
            here = ok & (land == b)
            into.append(np.where(here, km, _INF))
            t_at[:, c, b, 1:] = np.minimum(
                t_at[:, c, b, 1:], np.where(here, pick, _INF).min(axis=1)
            )
        ext.append(into)
    return out


def _ascend(
    tables: _Tables,
    setting: tuple[list[int], int, IntArray, float, float | None, float, float | None],
    lam: FloatArray,
    mu: float,
    iterations: int,
    step: float,
) -> tuple[float, FloatArray, float, int] | None:
    """Subgradient steps on L(lam, mu) from (lam, mu): (best bound, its lam, its mu,
    steps); None when no choice of routes exists. `setting`: bands, gap, the drivers' ride
    caps, the lateness cap, the known plan's km (the step target), when the CPU clock
    started and the limit on it."""
    bands, gap, cap, cap_late, ub, started, limit = setting
    capped = tables.late is not None
    best_bound, best_lam, best_mu = -_INF, lam, mu
    since = done = 0
    for it in range(iterations):
        done = it + 1
        value, grad, any_ok, late_sum = _lagrangian((lam, mu), tables, bands, gap, cap)
        if not any_ok:
            return None
        value -= mu * cap_late
        grad_mu = late_sum - cap_late if capped else 0.0
        if value > best_bound + 1e-9:
            best_bound, since, best_lam, best_mu = value, 0, lam, mu
        else:
            since += 1
            if since >= _PATIENCE:
                step, since = step / 2.0, 0
        norm = float(grad @ grad) + grad_mu * grad_mu
        if norm == 0 or (not capped and float(grad @ grad) == 0):
            break  # the relaxed routes serve every ride once: no direction left
        target = ub if ub is not None and ub > value else value + 0.05 * abs(value) + 1.0
        lam = lam + step * (target - value) / norm * grad
        mu = max(0.0, mu + step * (target - value) / norm * grad_mu)
        if step < 1e-4 or _out_of_time(started, limit):
            break
    return best_bound, best_lam, best_mu, done


def _fixing(
    n_bookings: int,
    rides: IntArray,
    tables: _Tables,
    mult: tuple[FloatArray, float],
    cap: IntArray,
    bound: float,
    upper_km: float,
) -> BoolArray:
    """Reduced-cost fixing (the module docstring): (N, K) True where booking b on driver k
    already lifts the bound above `upper_km`."""
    n, kk, nb, top = tables.shape
    jj = top + 1
    cost, f = _forward(mult, tables, cap)
    low = tables.earliest[None, :] + np.arange(nb)[:, None] * tables.width[None, :]  # (nb, n)
    after = _backward(mult[0], tables.legs, low, tables.bucket_of, tables.shape)
    # Forced onto k, ride c costs at least h(j) with j rides in all: the cheapest
    # prefix ending at c (j1 rides) plus suffix after it (j - j1), over c's buckets.
    # (The suffix leaves out the lateness price: lower, so fewer pairs drop; still valid.)
    h = np.full((kk, n, jj), _INF)
    for j1 in range(1, jj):
        for j2 in range(0, jj - j1):
            both = (cost[:, :, :, j1] + after[:, :, :, j2]).min(axis=2)  # (K, n)
            h[:, :, j1 + j2] = np.minimum(h[:, :, j1 + j2], both)
    both_ok = np.isfinite(h) & np.isfinite(f)[:, None, :]  # (f is inf above the cap)
    rise = np.where(both_ok, h - np.where(both_ok, f[:, None, :], 0.0), _INF).min(axis=2)
    margin = 1e-6 * max(1.0, abs(upper_km)) + 1e-9
    drop = (bound + rise > upper_km + margin).T  # (n, K)
    excluded = np.zeros((n_bookings, kk), dtype=bool)
    excluded[rides] = drop
    return excluded


def _least_incoming(tables: _Tables) -> FloatArray:
    """The starting multipliers: each ride's cheapest possible incoming leg."""
    n = tables.shape[0]
    out = np.zeros(n)
    for c in range(n):
        least = min(
            [float(tables.first_km[:, c].min())] + [float(e.min()) for e in tables.ext[c] if e.size]
        )
        out[c] = least if np.isfinite(least) else 0.0
    return out


def _lagrangian(
    mult: tuple[FloatArray, float],
    tables: _Tables,
    bands: list[int],
    gap: int,
    cap: IntArray,
) -> tuple[float, FloatArray, bool, float]:
    """L(lam, mu) without the `- mu x cap` term, a subgradient in lam (1 - times each ride
    is served in the minimising choice), whether any choice exists, and that choice's
    lateness (0 without lateness tables)."""
    lam = mult[0]
    late = tables.late
    n, _, nb, top = tables.shape
    _, f, end, back = _forward(mult, tables, cap, trace=True)
    best_val, best_choice = _INF, None
    for m in bands:
        if m + gap > top:
            continue  # no driver may take m + gap rides
        val, choice = band_knapsack(f, m, m + gap, n)
        if val < best_val:
            best_val, best_choice = val, choice
    if best_choice is None or not np.isfinite(best_val):
        return -_INF, np.zeros(n), False, 0.0
    served = np.zeros(n)
    late_sum = 0.0
    for k, j in enumerate(best_choice):
        at = int(end[k, j]) if j else -1
        while at >= 0 and j > 0:
            c, b = divmod(at, nb)
            served[c] += 1
            prev = int(back[k, c, b, j])
            if late is not None:
                late_sum += float(late[0][k, c] if prev < 0 else late[c + 1][k, prev, j - 1])
            at, j = prev, j - 1
    return float(lam.sum() + best_val), 1.0 - served, True, late_sum


def _forward(
    mult: tuple[FloatArray, float],
    tables: _Tables,
    cap: IntArray,
    *,
    trace: bool = False,
) -> Any:
    """Least reduced cost of a route ending at (ride, bucket) with j rides, (K, n, nb, jj),
    and f[k, j], each driver's least with exactly j rides; with `trace`, also where each f
    ends (K, jj) and each route's predecessor (a * nb + a's bucket; -1: the start). The
    reduced cost is km - lam, plus mu x minutes late where lateness tables are given."""
    lam, mu = mult
    ext, late = tables.ext, tables.late
    first_km, first_bucket = tables.first_km, tables.first_bucket
    priced = late is not None and mu > 0
    n, kk, nb, top = tables.shape
    jj = top + 1
    cost = np.full((kk, n, nb, jj), _INF)
    back = np.full((kk, n, nb, jj), -1, dtype=np.int64)
    drivers = np.arange(kk)
    for c in range(n):
        first = first_km[:, c] - lam[c]
        if priced:
            assert late is not None
            first = first + mu * late[0][:, c]
        cost[drivers, c, first_bucket[:, c], 1] = first
        if c == 0 or top < 2:
            continue
        src = cost[:, :c, :, :top].reshape(kk, c * nb, top)
        if priced:
            assert late is not None
            src = src + mu * late[c + 1]
        for b in range(nb):
            cand = src + ext[c][b]  # (K, c * nb, top): into (c, b) with one ride more
            arg = cand.argmin(axis=1)  # (K, top)
            best = np.take_along_axis(cand, arg[:, None, :], axis=1)[:, 0, :] - lam[c]
            better = best[:, 1:] < cost[:, c, b, 2:]
            cost[:, c, b, 2:] = np.where(better, best[:, 1:], cost[:, c, b, 2:])
            back[:, c, b, 2:] = np.where(better, arg[:, 1:], back[:, c, b, 2:])
    # f[k, j]: driver k's least reduced cost with exactly j rides (0 rides: 0).
    flat = cost.reshape(kk, n * nb, jj)
    end = flat.argmin(axis=1)  # (K, jj): c * nb + bucket
    f = np.take_along_axis(flat, end[:, None, :], axis=1)[:, 0, :]
    f[:, 0] = 0.0
    f[np.arange(jj)[None, :] > cap[:, None]] = _INF
    if trace:
        return cost, f, end, back
    return cost, f


def _backward(
    lam: FloatArray,
    legs: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, BoolArray],
    low: FloatArray,
    bucket_of: Any,
    shape: tuple[int, int, int, int],
) -> FloatArray:
    """(K, n, nb, jj): least reduced cost of the j rides after ride c (its multiplier not
    included) on driver k, picking c up at the start of its bucket `low[bucket, c]` (the
    earliest any route in that bucket could: so a superset of the real continuations)."""
    dur, leg_min, leg_km, deadline, shift_end, allowed = legs
    n, kk, nb, top = shape
    jj = top + 1
    out = np.full((kk, n, nb, jj), _INF)
    out[:, :, :, 0] = 0.0
    for c in range(n - 2, -1, -1):
        nxt = np.arange(c + 1, n)
        # (nb, m): pickup of each later ride e from c's bucket start, and where it lands.
        pick = np.maximum(
            low[:, c][:, None] + dur[c] + leg_min[c, nxt][None, :], low[0, nxt][None, :]
        )
        fits = pick <= deadline[nxt][None, :]
        land = np.stack([bucket_of(int(e), pick[:, i]) for i, e in enumerate(nxt)], axis=1)
        ok = fits[None, :, :] & (
            pick[None, :, :] + dur[nxt][None, None, :] <= shift_end[:, None, None]
        )
        ok &= allowed[nxt].T[:, None, :]  # (K, nb, m)
        # The continuation's cost from e's landing bucket, one ride fewer.
        cont = out[:, nxt, :, :top]  # (K, m, nb, top)
        take = np.take_along_axis(
            cont, np.broadcast_to(land.T[None, :, :, None], (kk, len(nxt), nb, top)), axis=2
        )  # (K, m, nb_c, top): from c's bucket b, e lands in land[b, e]
        step = (leg_km[c, nxt] - lam[nxt])[None, :, None, None] + take
        step = np.where(ok.transpose(0, 2, 1)[:, :, :, None], step, _INF)
        out[:, c, :, 1:] = step.min(axis=1)
    return out
