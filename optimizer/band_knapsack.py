"""Ride counts per driver within one band, summing to the day's rides, at least cost.

The last step of the Lagrangian deadhead bound (`optimizer.deadhead_bound`): given each
driver's least cost `f[k, j]` of a route of exactly j rides, choose counts j_k in [lo, hi]
summing to n, with at least one driver at each end of the band (so the gap is exactly
hi - lo), minimising the total. A dynamic programme over drivers x rides so far x which ends
of the band are taken.
"""

from __future__ import annotations

import numpy as np

from optimizer.problem import FloatArray, IntArray

__all__ = ["band_knapsack"]

_INF = np.inf


def band_knapsack(f: FloatArray, lo: int, hi: int, n: int) -> tuple[float, list[int] | None]:
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
