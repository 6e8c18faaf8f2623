"""The objective: fairness first, then the operating cost (empty km, lateness, workload spread).

The value of a plan is a vector of five components, smaller is better:

1. `gap`: max - min rides per driver (idle drivers count as 0);
2. `count_sq_dev`: the sum of squared deviations of ride counts from their mean. The gap alone
   is flat (5/5/2/2 -> 4/5/3/2 keeps gap 3); this smooth term drops by at least 2 with every
   move from a driver with c rides to one with at most c - 2, so every balancing move counts;
3. `workload_spread_minutes`: max - min of per-driver driving + boarding minutes;
4. `deadhead_km`: total empty driving;
5. `lateness_minutes`: total minutes picked up after windows closed (within tolerance).

`lexicographic` (default) compares the gap, then the squared deviation, then one operating
cost that trades the last three terms off explicitly, in kilometre-equivalents:

    cost = km_weight x deadhead_km + late_weight x lateness_minutes
           + spread_weight x max(0, workload_spread_minutes - spread_band_minutes)

so a workload spread within the band costs nothing, and beyond it one minute of spread is
worth `spread_weight` km of empty driving (the default: 0.2 km, i.e. evening out 10 minutes of
work is worth 2 km; a minute of lateness, 2 km). Before, the spread strictly preceded
deadhead, and kilometres were spent to even out minutes. `weighted` compares one weighted
sum of all five components. `gain` is what the `min_improvement` threshold applies to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from optimizer.feasibility import RouteSchedule
from optimizer.problem import FloatArray, IntArray
from optimizer.ride_model import pairwise_sum

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
    km_weight: float = 1.0
    """Lexicographic cost of one km of empty driving."""
    late_weight: float = 2.0
    """Lexicographic cost of one minute of lateness, in km (a patient's minute weighs twice
    a minute of empty driving at 30 km/h)."""
    spread_weight: float = 0.2
    """Lexicographic cost of one minute of workload spread beyond the band, in km."""
    spread_band_minutes: float = 60.0
    """Workload spread (max - min driving and boarding minutes) that costs nothing."""

    def cost(self, value: Value) -> float:
        """The operating cost of a plan (the lexicographic mode's third term), in km."""
        excess = max(0.0, value[2] - self.spread_band_minutes)
        return float(
            self.km_weight * value[3] + self.late_weight * value[4] + self.spread_weight * excess
        )

    def gain(self, before: Value, after: Value) -> float:
        """How much better `after` is (negative when worse).

        Lexicographic: the decrease of the gap, else of the squared deviation, else of the
        operating cost (`cost`), each in its own unit. Weighted: the decrease of the sum.
        """
        if self.mode == "weighted":
            pairs = zip(self.weights, before, after, strict=True)
            return float(sum(w * (b - a) for w, b, a in pairs))
        for b, a in zip(before[:2], after[:2], strict=True):
            if abs(b - a) > _EPS * max(1.0, abs(b)):
                return float(b - a)
        diff = self.cost(before) - self.cost(after)
        return diff if abs(diff) > _EPS * max(1.0, abs(self.cost(before))) else 0.0

    def scalar(self, value: Value) -> float:
        """One number for a value (weighted sum), e.g. for a reward or a plot."""
        return float(sum(w * v for w, v in zip(self.weights, value, strict=True)))


def count_gap(counts: IntArray) -> int:
    return int(counts.max() - counts.min()) if len(counts) else 0


def count_sq_dev(counts: IntArray) -> float:
    return float(((counts - counts.mean()) ** 2).sum()) if len(counts) else 0.0


def count_terms_after(
    counts: IntArray, src: IntArray, dest: IntArray, amount: IntArray | None = None
) -> tuple[IntArray, FloatArray]:
    """Gap and squared deviation after each of many count changes, vectorised.

    Change i moves `amount[i]` rides (default 1; negative: the other way) from driver
    `src[i]` to driver `dest[i]`; `dest < 0` or a zero amount changes nothing (a swap). The
    one place besides `count_gap` / `count_sq_dev` that computes these terms.
    """
    n, k = len(src), len(counts)
    step = np.ones(n, dtype=np.int64) if amount is None else np.asarray(amount, dtype=np.int64)
    sq = count_sq_dev(counts)
    gap = count_gap(counts)
    moving = (dest >= 0) & (step != 0)
    c_src = counts[src]
    c_dst = counts[np.where(moving, dest, 0)]
    # (a - s - m)^2 + (b + s - m)^2 - (a - m)^2 - (b - m)^2 = 2s(b - a) + 2s^2
    sq_after = np.where(moving, sq + 2.0 * step * (c_dst - c_src) + 2.0 * step * step, sq)
    new_src, new_dst = c_src - step, c_dst + step
    # Max and min over the drivers a change leaves alone: the first of the top (bottom) three.
    top = np.argsort(-counts, kind="stable")[:3]
    bottom = np.argsort(counts, kind="stable")[:3]

    def rest(order: IntArray, fill: int) -> IntArray:
        """The count of the first driver of `order` that change i leaves alone, else `fill`."""
        free = (src[:, None] != order[None, :]) & (dest[:, None] != order[None, :])
        first = free.argmax(axis=1)
        out: IntArray = np.where(free.any(axis=1), counts[order][first], fill).astype(np.int64)
        return out

    big = int(counts.max()) + 10 + int(np.abs(step).max(initial=0)) if k else 10
    max_rest, min_rest = rest(top, -big), rest(bottom, big)
    new_max = np.maximum(max_rest, np.maximum(new_src, new_dst))
    new_min = np.minimum(min_rest, np.minimum(new_src, new_dst))
    gap_after = np.where(moving, new_max - new_min, gap).astype(np.int64)
    return gap_after, sq_after.astype(float)


def gap_floor(n_rides: int, n_drivers: int) -> int:
    """The smallest gap any plan could have before constraints: 0 if rides divide evenly, else 1."""
    return 0 if n_drivers == 0 or n_rides % n_drivers == 0 else 1


def value_of(
    counts: IntArray | Sequence[int],
    workload: FloatArray | Sequence[float],
    deadhead: FloatArray | Sequence[float],
    lateness: FloatArray | Sequence[float],
) -> Value:
    """The objective value from per-driver aggregates (arrays or lists).

    Computed on Python numbers with numpy's own summation (`ride_model.pairwise_sum`), so it
    equals `count_gap`, `count_sq_dev` and the arrays' sums to the last bit, at a fraction of
    the cost for the few drivers of a day (the validator computes one per checked move).
    """
    c = counts.tolist() if isinstance(counts, np.ndarray) else list(counts)
    w = workload.tolist() if isinstance(workload, np.ndarray) else workload
    dh = deadhead.tolist() if isinstance(deadhead, np.ndarray) else deadhead
    late = lateness.tolist() if isinstance(lateness, np.ndarray) else lateness
    if not c:
        return (0.0, 0.0, 0.0, pairwise_sum(dh), pairwise_sum(late))
    mean = pairwise_sum([float(x) for x in c]) / len(c)  # `counts.mean()`
    sq = pairwise_sum([(x - mean) * (x - mean) for x in c])
    return (
        float(max(c) - min(c)),
        sq,
        float(max(w) - min(w)) if len(w) else 0.0,
        pairwise_sum(dh),
        pairwise_sum(late),
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
