"""The objective: fairness first, then workload balance, deadhead and lateness.

The value of a plan is a vector, smaller is better, in this order:

1. `gap`: max - min rides per driver (idle drivers count as 0);
2. `count_sq_dev`: the sum of squared deviations of ride counts from their mean. The gap alone
   is flat (5/5/2/2 -> 4/5/3/2 keeps gap 3); this smooth term drops by at least 2 with every
   move from a driver with c rides to one with at most c - 2, so every balancing move counts;
3. `workload_spread_minutes`: max - min of per-driver driving + boarding minutes;
4. `deadhead_km`: total empty driving;
5. `lateness_minutes`: total minutes picked up after windows closed (within tolerance).

`lexicographic` (default) compares the vectors in that order; `weighted` compares a weighted
sum. `gain` is what the `min_improvement` threshold applies to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from optimizer.feasibility import RouteSchedule
from optimizer.problem import FloatArray, IntArray

COMPONENTS = (
    "gap",
    "count_sq_dev",
    "workload_spread_minutes",
    "deadhead_km",
    "lateness_minutes",
)
Value = tuple[float, float, float, float, float]
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Objective:
    """How two plans compare."""

    mode: Literal["lexicographic", "weighted"] = "lexicographic"
    weights: tuple[float, float, float, float, float] = (100.0, 10.0, 0.1, 0.5, 0.2)
    """Per component, for `weighted` mode (rides, rides^2, minutes, km, minutes)."""

    def gain(self, before: Value, after: Value) -> float:
        """How much better `after` is (negative when worse).

        Lexicographic: the decrease of the first component that changed, in its own unit.
        Weighted: the decrease of the weighted sum.
        """
        if self.mode == "weighted":
            pairs = zip(self.weights, before, after, strict=True)
            return float(sum(w * (b - a) for w, b, a in pairs))
        for b, a in zip(before, after, strict=True):
            if abs(b - a) > _EPS * max(1.0, abs(b)):
                return float(b - a)
        return 0.0

    def scalar(self, value: Value) -> float:
        """One number for a value (weighted sum), e.g. for a reward or a plot."""
        return float(sum(w * v for w, v in zip(self.weights, value, strict=True)))


def count_gap(counts: IntArray) -> int:
    return int(counts.max() - counts.min()) if len(counts) else 0


def count_sq_dev(counts: IntArray) -> float:
    return float(((counts - counts.mean()) ** 2).sum()) if len(counts) else 0.0


def gap_floor(n_rides: int, n_drivers: int) -> int:
    """The smallest gap any plan could have before constraints: 0 if rides divide evenly, else 1."""
    return 0 if n_drivers == 0 or n_rides % n_drivers == 0 else 1


def value_of(
    counts: IntArray, workload: FloatArray, deadhead: FloatArray, lateness: FloatArray
) -> Value:
    """The objective value from per-driver aggregates."""
    spread = float(workload.max() - workload.min()) if len(workload) else 0.0
    return (
        float(count_gap(counts)),
        count_sq_dev(counts),
        spread,
        float(deadhead.sum()),
        float(lateness.sum()),
    )


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A plan's objective value and the metrics reported for it."""

    value: Value
    counts: IntArray
    workload: FloatArray
    deadhead_km: float
    lateness_minutes: float
    violations: int
    unassigned: int

    @property
    def gap(self) -> int:
        return int(self.value[0])

    @property
    def unfairness(self) -> float:
        """Timefold's load-balance unfairness: sqrt of summed squared count deviations."""
        return math.sqrt(self.value[1])


def evaluate(schedules: Sequence[RouteSchedule], unassigned: int = 0) -> Evaluation:
    """Evaluate a complete plan from every driver's schedule."""
    counts = np.array([s.rides for s in schedules], dtype=np.int64)
    workload = np.array([s.workload_minutes for s in schedules], dtype=float)
    deadhead = np.array([s.deadhead_km for s in schedules], dtype=float)
    lateness = np.array([s.lateness_minutes for s in schedules], dtype=float)
    violations: set[object] = set()
    for s in schedules:
        violations |= s.violations
    return Evaluation(
        value=value_of(counts, workload, deadhead, lateness),
        counts=counts,
        workload=workload,
        deadhead_km=float(deadhead.sum()),
        lateness_minutes=float(lateness.sum()),
        violations=len(violations),
        unassigned=unassigned,
    )
