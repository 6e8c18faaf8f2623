"""The relaxed routes of the Lagrangian deadhead bound (`optimizer.deadhead_bound`), per time
bucket resolution, and the dynamic programmes over them.

A relaxed route is rides in service order, each reachable in time from the one before under
the driver's shift, the per-booking deadlines, capabilities and locked rides. Each ride's
pickup window is cut into equal time buckets; per (driver, ride, bucket, count) the tables keep
the earliest pickup of any route reaching it there, and the DPs the least cost of any, so the
route set is a superset of the real routes (never a subset): any bound over it stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from optimizer.problem import BoolArray, FloatArray, IntArray, Problem
from optimizer.ride_model import duration

__all__ = [
    "MAX_TABLE",
    "RelaxedDay",
    "Tables",
    "backward",
    "buckets_that_fit",
    "build_tables",
    "forward",
    "least_incoming",
]

_EPS = 1e-6
_INF = np.inf
MAX_TABLE = 12e6  # most extension-table entries (floats) before fewer time buckets

RelaxedDay = tuple[IntArray, BoolArray, FloatArray, set[int], IntArray]
"""The assigned rides in service order, (n, K) which driver may take which, the per-booking
deadlines, the drivers whose shift the input already broke, each driver's ride cap."""


def buckets_that_fit(kk: int, top: int, n: int, most: float) -> int:
    """The most time buckets (at least 1) whose extension tables stay under `most` floats."""
    nb = 1
    while (nb + 1) ** 2 * kk * top * n * n / 2 <= most:
        nb += 1
    return nb


@dataclass(frozen=True, slots=True)
class Tables:
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


def build_tables(
    p: Problem,
    day: RelaxedDay,
    top: int,
    buckets: int,
    max_lateness_minutes: float | None,
    most: float | None = None,
) -> Tables:
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
    nb = min(max(1, int(buckets)), buckets_that_fit(kk, top, n, most or MAX_TABLE))
    width = np.maximum(deadline - earliest, 1e-9) / nb
    out = Tables(
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


def least_incoming(tables: Tables) -> FloatArray:
    """The starting multipliers: each ride's cheapest possible incoming leg."""
    n = tables.shape[0]
    out = np.zeros(n)
    for c in range(n):
        least = min(
            [float(tables.first_km[:, c].min())] + [float(e.min()) for e in tables.ext[c] if e.size]
        )
        out[c] = least if np.isfinite(least) else 0.0
    return out


def forward(
    mult: tuple[FloatArray, float],
    tables: Tables,
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


def backward(
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
