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
rides. `f_k` is a dynamic programme over the rides in service order per ride count; its route
set is a superset of the real routes (each (ride, count) keeps the earliest pickup of any
route reaching it and the cheapest cost of any, possibly of two different routes), so the
bound stays valid. A subgradient method raises `L`; the best value seen is the bound.

Times and kilometres are the ride model's (`ride_model.leg`, `duration`), with the same
tolerances as the validator (`_EPS`) widened, never narrowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.feasibility import deadlines, schedule_all
from optimizer.moves import solo_feasible
from optimizer.problem import BoolArray, FloatArray, IntArray, Problem
from optimizer.ride_model import duration

__all__ = ["DeadheadBound", "deadhead_lower_bound"]

_EPS = 1e-6
_INF = np.inf
_PATIENCE = 50  # subgradient steps without a better bound before the step halves


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
) -> DeadheadBound:
    """A valid lower bound on the least deadhead (km) of any plan at ride-count gap `gap`
    that adds no violation to `assignment` (see the module docstring).

    `upper_km`: the deadhead of a known plan at that gap (steers the step size; the bound
    is valid whatever it is). `iterations`: subgradient steps (deterministic)."""
    p = problem
    allowed_all, upper, shift_ok, limit_ok = allowed_drivers(p, assignment)
    rides = np.nonzero(assignment >= 0)[0]
    rides = rides[np.argsort(p.order[rides], kind="stable")]
    n, kk = len(rides), p.n_drivers
    if n == 0 or kk == 0:
        return DeadheadBound(0.0, 0, True)
    allowed = allowed_all[rides]  # (n, K)
    cap = np.array(
        [
            n if (int(p.max_rides[k]) < 0 or k in limit_ok) else int(p.max_rides[k])
            for k in range(kk)
        ],
        dtype=np.int64,
    )
    bands = [m for m in range(0, n // kk + 1) if kk * m <= n <= kk * (m + gap)]
    if not bands:
        return DeadheadBound(_INF, 0, False)
    top = min(int(cap.max()), bands[-1] + gap, n)  # most rides any driver may take
    jj = top + 1  # counts 0..top

    earliest = p.earliest[rides].astype(float)
    deadline = upper[rides].astype(float) + _EPS
    dur = duration(p, rides).astype(float)
    leg_min = p.travel.dropoff_to_pickup[np.ix_(rides, rides)]
    leg_km = p.travel.dropoff_to_pickup_km[np.ix_(rides, rides)]
    start_min = p.travel.start_to_pickup[:, rides]  # (K, n)
    start_km = p.travel.start_to_pickup_km[:, rides]
    shift_end = np.where(
        np.isin(np.arange(kk), list(shift_ok)), _INF, p.shift_end.astype(float) + _EPS
    )

    # Earliest pickup per (driver, ride, count) over the relaxed routes, and which
    # (predecessor, count) -> ride extensions exist: fixed, whatever the multipliers.
    t_at = np.full((kk, n, jj), _INF)
    ext: list[FloatArray] = []  # ext[c]: (K, c, top) km of a -> c at count j -> j + 1, or inf
    first_km = np.where(allowed.T, start_km, _INF)  # (K, n)
    for c in range(n):
        ok_k = allowed[c]  # (K,)
        arrive0 = p.shift_start.astype(float) + start_min[:, c]
        pick0 = np.maximum(arrive0, earliest[c])
        ok0 = ok_k & (pick0 <= deadline[c]) & (pick0 + dur[c] <= shift_end)
        first_km[~ok0, c] = _INF
        t_at[ok0, c, 1] = pick0[ok0]
        if c == 0:
            ext.append(np.full((kk, 0, top), _INF))
            continue
        arrive = t_at[:, :c, :top] + (dur[:c] + leg_min[:c, c])[None, :, None]
        pick = np.maximum(arrive, earliest[c])
        ok = (pick <= deadline[c]) & (pick + dur[c] <= shift_end[:, None, None])
        ok &= ok_k[:, None, None] & (cap[:, None, None] >= np.arange(1, top + 1)[None, None, :])
        pick = np.where(ok, pick, _INF)
        best = pick.min(axis=1)  # (K, top): count j + 1
        t_at[:, c, 1:] = np.minimum(t_at[:, c, 1:], best)
        ext.append(np.where(ok, leg_km[:c, c][None, :, None], _INF))

    lam = _least_incoming(first_km, ext, n)
    best_bound = -_INF
    step = 1.0
    since = 0
    ub = upper_km
    done = 0
    for it in range(iterations):
        done = it + 1
        value, grad, any_ok = _lagrangian(lam, first_km, ext, n, kk, top, bands, gap, cap)
        if not any_ok:
            return DeadheadBound(_INF, done, False)
        if value > best_bound + 1e-9:
            best_bound, since = value, 0
        else:
            since += 1
            if since >= _PATIENCE:
                step, since = step / 2.0, 0
        norm = float(grad @ grad)
        if norm == 0:
            break  # the relaxed routes serve every ride once: no direction left
        target = ub if ub is not None and ub > value else value + 0.05 * abs(value) + 1.0
        lam = lam + step * (target - value) / norm * grad
        if step < 1e-4:
            break
    # Floating sums: shave a hair so rounding never lifts the bound above a true minimum.
    return DeadheadBound(float(best_bound) - 1e-6 * max(1.0, abs(best_bound)), done, True)


def _least_incoming(first_km: FloatArray, ext: list[FloatArray], n: int) -> FloatArray:
    """The starting multipliers: each ride's cheapest possible incoming leg."""
    out = np.zeros(n)
    for c in range(n):
        cands = [float(first_km[:, c].min())]
        if ext[c].size:
            cands.append(float(ext[c].min()))
        least = min(cands)
        out[c] = least if np.isfinite(least) else 0.0
    return out


def _lagrangian(
    lam: FloatArray,
    first_km: FloatArray,
    ext: list[FloatArray],
    n: int,
    kk: int,
    top: int,
    bands: list[int],
    gap: int,
    cap: IntArray,
) -> tuple[float, FloatArray, bool]:
    """L(lam), a subgradient (1 - times each ride is served in the minimising choice), and
    whether any choice exists."""
    jj = top + 1
    cost = np.full((kk, n, jj), _INF)  # least reduced cost of a route ending at c with j rides
    back = np.full((kk, n, jj), -1, dtype=np.int64)  # its predecessor (-1: the start)
    for c in range(n):
        cost[:, c, 1] = first_km[:, c] - lam[c]
        if c == 0 or top < 2:
            continue
        cand = cost[:, :c, :top] + ext[c]  # (K, c, top): from a with j rides to c with j + 1
        arg = cand.argmin(axis=1)  # (K, top)
        best = np.take_along_axis(cand, arg[:, None, :], axis=1)[:, 0, :] - lam[c]
        better = best[:, 1:] < cost[:, c, 2:]
        cost[:, c, 2:] = np.where(better, best[:, 1:], cost[:, c, 2:])
        back[:, c, 2:] = np.where(better, arg[:, 1:], back[:, c, 2:])
    # f[k, j]: driver k's least reduced cost with exactly j rides (0 rides: 0).
    end = cost.argmin(axis=1)  # (K, jj)
    f = np.take_along_axis(cost, end[:, None, :], axis=1)[:, 0, :]
    f[:, 0] = 0.0
    f[np.arange(jj)[None, :] > cap[:, None]] = _INF
    best_val, best_choice = _INF, None
    for m in bands:
        if m + gap > top:
            continue  # no driver may take m + gap rides
        val, choice = _knapsack(f, m, m + gap, n)
        if val < best_val:
            best_val, best_choice = val, choice
    if best_choice is None or not np.isfinite(best_val):
        return -_INF, np.zeros(n), False
    served = np.zeros(n)
    for k, j in enumerate(best_choice):
        if j == 0:
            continue
        c = int(end[k, j])
        while c >= 0 and j > 0:
            served[c] += 1
            c, j = int(back[k, c, j]), j - 1
    return float(lam.sum() + best_val), 1.0 - served, True


def _knapsack(f: FloatArray, lo: int, hi: int, n: int) -> tuple[float, list[int] | None]:
    """Counts j_k in [lo, hi] summing to n, at least one at `lo` and one at `hi` (the gap is
    exactly hi - lo), minimising sum f[k, j_k]; (value, counts)."""
    kk = f.shape[0]
    g = np.full((n + 1, 4), _INF)  # [rides so far, which ends of the band are taken]
    g[0, 0] = 0.0
    picks: list[IntArray] = []
    froms: list[IntArray] = []
    for k in range(kk):
        new = np.full((n + 1, 4), _INF)
        pick = np.full((n + 1, 4), -1, dtype=np.int64)
        came = np.full((n + 1, 4), -1, dtype=np.int64)
        for j in range(lo, hi + 1):
            if not np.isfinite(f[k, j]):
                continue
            bit = (1 if j == lo else 0) | (2 if j == hi else 0)
            for flags in range(4):
                to = flags | bit
                shifted = np.full(n + 1, _INF)
                shifted[j:] = g[: n + 1 - j, flags] + f[k, j]
                better = shifted < new[:, to]
                new[:, to] = np.where(better, shifted, new[:, to])
                pick[:, to] = np.where(better, j, pick[:, to])
                came[:, to] = np.where(better, flags, came[:, to])
        g = new
        picks.append(pick)
        froms.append(came)
    if not np.isfinite(g[n, 3]):
        return _INF, None
    out = [0] * kk
    total, flags = n, 3
    for k in range(kk - 1, -1, -1):
        j = int(picks[k][total, flags])
        out[k] = j
        total, flags = total - j, int(froms[k][total, flags])
    return float(g[n, 3]), out
