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
bound. What it buys is small (0-0.7 % on six fresh 100x13 days), because the bound is close
to what this relaxation can give: on a patient 100x13 day the first pass's best `L` is within
0.03 % of the LP value of the set-partitioning master over the same routes (column generation
priced by this DP, `bench/bound_gap.py`), and 8 buckets from scratch add 0.3-0.5 % over 4 (16 and 32
add nothing more on a 40x6 day). The rest of the distance to the minimum is the master's
integrality gap (7.0 % on a patient 40x6 day whose minimum CP-SAT proves; 0-1.8 % on nine
other proven 40x6 and 60x8 days), which no choice of multipliers closes. Cuts that see it
(subset-row inequalities: the LP optimum on that 40x6 day violates some by 0.5) would need a
route state per cut in the DP.

Given a known plan's deadhead `U`, reduced-cost fixing marks the (ride, driver) pairs that no
plan with deadhead <= `U` can use: the bound with ride b forced onto driver k (cheapest prefix
to b plus cheapest continuation from b's bucket, against each driver's unforced best) exceeds
`U`. `optimizer.exact` drops them from its model.

Times and kilometres are the ride model's (`ride_model.leg`, `duration`), with the same
tolerances as the validator widened, never narrowed; the tables and the DPs over them live in
`optimizer._route_tables`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from optimizer._route_tables import (
    RelaxedDay,
    Tables,
    backward,
    buckets_that_fit,
    build_tables,
    forward,
    least_incoming,
)
from optimizer.band_knapsack import band_knapsack
from optimizer.feasibility import deadlines, schedule_all
from optimizer.moves import solo_feasible
from optimizer.problem import BoolArray, FloatArray, IntArray, Problem

__all__ = ["DeadheadBound", "deadhead_lower_bound"]

_INF = np.inf
_PATIENCE = 50  # subgradient steps without a better bound before the step halves
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
    tables = build_tables(p, day, top, buckets, max_lateness_minutes)
    capped = max_lateness_minutes is not None
    cap_late = float(max_lateness_minutes or 0.0)
    ascend = (bands, gap, cap, cap_late, upper_km, started, time_limit_s)
    run = _ascend(tables, ascend, least_incoming(tables), 0.0, iterations, 1.0)
    if run is None:
        return DeadheadBound(_INF, 1, False)
    best_bound, best_lam, best_mu, done = run
    # Finer buckets from the coarse multipliers: a tighter relaxation, and a few steps from
    # near its optimum instead of a whole ascent. Either value is a bound; the best is kept.
    fine = min(int(fine_buckets), buckets_that_fit(kk, top, n, _MAX_FINE_TABLE))
    # (Not where the first pass already meets the known plan: nothing left to prove.)
    room = upper_km is None or best_bound < upper_km - 1e-3 * max(1.0, abs(upper_km))
    if room and fine > tables.shape[2] and not _out_of_time(started, time_limit_s):
        fine_tables = build_tables(p, day, top, fine, max_lateness_minutes, _MAX_FINE_TABLE)
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


def _setup(p: Problem, assignment: IntArray, gap: int) -> tuple[RelaxedDay, list[int], int] | None:
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


def _out_of_time(started: float, limit: float | None) -> bool:
    return limit is not None and time.process_time() - started > limit


def _ascend(
    tables: Tables,
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
    tables: Tables,
    mult: tuple[FloatArray, float],
    cap: IntArray,
    bound: float,
    upper_km: float,
) -> BoolArray:
    """Reduced-cost fixing (the module docstring): (N, K) True where booking b on driver k
    already lifts the bound above `upper_km`."""
    n, kk, nb, top = tables.shape
    jj = top + 1
    cost, f = forward(mult, tables, cap)
    low = tables.earliest[None, :] + np.arange(nb)[:, None] * tables.width[None, :]  # (nb, n)
    after = backward(mult[0], tables.legs, low, tables.bucket_of, tables.shape)
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


def _lagrangian(
    mult: tuple[FloatArray, float],
    tables: Tables,
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
    _, f, end, back = forward(mult, tables, cap, trace=True)
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
