"""The insertion grid of a small day: every booking inserted into every route of a plan.

`RouteArrays` builds one `Grid` per plan on days of at most `RouteArrays.GRID_PAIRS`
(booking, driver) pairs, from the per-problem `GridPairs` (kept in `Problem.memo`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.problem import BoolArray, FloatArray, IntArray, Problem
from optimizer.ride_model import duration, leg_tables, tables

__all__ = ["Grid", "GridPairs", "KernelTables", "fits_mask", "grid_pairs", "kernel_tables"]


@dataclass(slots=True)
class Grid:
    """(N, K) tables of `RouteArrays.insertion` and `km_insertion` without skips (and of
    `fits`, filled on first use)."""

    own: FloatArray
    downstream: FloatArray
    empty: FloatArray
    push: FloatArray
    km: FloatArray
    fits: BoolArray | None = None
    lists: tuple[list[list[float]], list[list[float]], list[list[float]]] | None = None
    """`own`, `downstream`, `empty` as nested lists (filled on first use, `insertion_lists`)."""


def fits_mask(own: FloatArray, downstream: FloatArray, push: FloatArray) -> BoolArray:
    """`RouteArrays.fits` from the insertion arrays (own window kept; nothing pushed, or the
    push absorbed downstream)."""
    fits: BoolArray = (own >= -1e-6) & ((push <= 1e-6) | (downstream >= -1e-6))
    return fits


@dataclass(frozen=True, slots=True)
class GridPairs:
    """Every (booking, driver) pair, booking-major, with what the grid needs of each (per
    problem: `Problem.memo`)."""

    booking: IntArray
    driver: IntArray
    query: IntArray  # `RouteArrays.key` of the booking on the driver's route
    start_row: IntArray  # the driver's start in `ride_model.leg_tables`
    shift_start: FloatArray
    shift_end: FloatArray
    earliest: FloatArray
    duration: FloatArray


def grid_pairs(p: Problem) -> GridPairs:
    n, k = p.n_bookings, p.n_drivers
    b = np.repeat(np.arange(n, dtype=np.int64), k)
    d = np.tile(np.arange(k, dtype=np.int64), n)
    return GridPairs(
        booking=b,
        driver=d,
        query=d * (n + 1) + p.order[b],
        start_row=n + d,
        shift_start=p.shift_start[d],
        shift_end=p.shift_end[d],
        earliest=p.earliest[b],
        duration=duration(p, b),
    )


@dataclass(frozen=True, slots=True)
class KernelTables:
    """The problem's arrays as the compiled loops read them (`optimizer.kernels`): C-contiguous
    int64 / float64 (per problem: `Problem.memo`)."""

    order: IntArray
    earliest: FloatArray
    duration: FloatArray
    shift_start: FloatArray
    shift_end: FloatArray
    minutes: FloatArray
    """`ride_model.leg_tables`: (N + K, N)."""
    km: FloatArray
    latest: FloatArray
    window_limit: FloatArray
    """`feasibility.window_limits`."""
    capable: BoolArray
    """(N, K)."""


def kernel_tables(p: Problem) -> KernelTables:
    return p.memo("kernel_tables", _kernel_tables)


def _kernel_tables(p: Problem) -> KernelTables:
    def f64(a: FloatArray) -> FloatArray:
        return np.ascontiguousarray(a, dtype=np.float64)

    minutes, km = leg_tables(p)
    return KernelTables(
        order=np.ascontiguousarray(p.order, dtype=np.int64),
        earliest=f64(p.earliest),
        duration=f64(duration(p)),
        shift_start=f64(p.shift_start),
        shift_end=f64(p.shift_end),
        minutes=f64(minutes),
        km=f64(km),
        latest=f64(p.latest),
        window_limit=np.asarray(tables(p).window_limit, dtype=np.float64),
        capable=np.ascontiguousarray(p.capable, dtype=bool),
    )
