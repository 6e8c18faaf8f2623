"""Moves and the candidate set a policy scores.

A move has one or two steps. Every candidate is stored in flat arrays: step 1 moves `b1` from
`src` to `dst`; step 2, when `b2 >= 0`, moves `b2` from `dst` to `dst2`. So:

- `move`  (b1: src -> dst), `b2 = dst2 = -1`;
- `swap`  (b1: src -> dst, b2: dst -> src), `dst2 = src`;
- `chain` (b1: src -> dst, b2: dst -> dst2), three drivers: an ejection chain for when b1 can
  only go where b2 is, and b2 can go where b1 could not.

Candidate generation masks out what is structurally illegal (locked bookings, missing
capabilities, a booking its new driver could not serve even alone within shift and window) and,
for the count-fairness part of the objective, records each candidate's gap and squared
deviation after the move, which the pass uses to drop moves that cannot improve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from optimizer.objective import count_terms_after
from optimizer.problem import BoolArray, FloatArray, IntArray, Problem
from optimizer.ride_model import dropoff_at, leg, pickup_at
from optimizer.routes import RouteArrays

MOVE, SWAP, CHAIN = 0, 1, 2
KIND_NAMES: dict[int, Literal["move", "swap", "chain"]] = {
    MOVE: "move",
    SWAP: "swap",
    CHAIN: "chain",
}


@dataclass(frozen=True, slots=True)
class Step:
    booking: int
    from_driver: int
    to_driver: int


@dataclass(frozen=True, slots=True)
class Move:
    """One candidate as a unit of validation and audit."""

    kind: Literal["move", "swap", "chain", "compound"]
    """`compound`: a lookahead's plateau steps and the improving step after them, in order."""
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Candidates:
    """Parallel arrays, one entry per candidate (see the module docstring)."""

    kind: IntArray
    b1: IntArray
    src: IntArray
    dst: IntArray
    b2: IntArray
    dst2: IntArray
    gap_after: IntArray
    sq_after: FloatArray

    def __len__(self) -> int:
        return len(self.kind)

    def move(self, i: int) -> Move:
        steps = [Step(int(self.b1[i]), int(self.src[i]), int(self.dst[i]))]
        if self.b2[i] >= 0:
            steps.append(Step(int(self.b2[i]), int(self.dst[i]), int(self.dst2[i])))
        return Move(KIND_NAMES[int(self.kind[i])], tuple(steps))

    def take(self, idx: IntArray) -> Candidates:
        return Candidates(
            kind=self.kind[idx],
            b1=self.b1[idx],
            src=self.src[idx],
            dst=self.dst[idx],
            b2=self.b2[idx],
            dst2=self.dst2[idx],
            gap_after=self.gap_after[idx],
            sq_after=self.sq_after[idx],
        )


def solo_feasible(problem: Problem, deadline: FloatArray | None = None) -> BoolArray:
    """(N, K): driver k could serve booking b as its only ride, within window and shift.

    A necessary condition for b to be on k's route at all, so masking with it loses nothing.
    `deadline`: latest allowed pickup per booking (default: window close + tolerance).
    """
    if deadline is None:
        deadline = problem.latest + problem.tolerance
    b = np.arange(problem.n_bookings)[:, None]
    k = np.arange(problem.n_drivers)[None, :]
    empty, _ = leg(problem, k, -1, b)  # (N, K): each ride as the driver's first
    pickup = pickup_at(problem, problem.shift_start[k] + empty, b)
    done = dropoff_at(problem, pickup, b)
    ok: BoolArray = (pickup <= deadline[:, None] + 1e-6) & (
        done <= problem.shift_end[None, :] + 1e-6
    )
    return ok & problem.capable


def generate(
    problem: Problem,
    assignment: IntArray,
    counts: IntArray,
    solo: BoolArray,
    routes: list[list[int]],
    *,
    index: RouteArrays | None = None,
    balancing_only: bool = False,
    swap_window: int = 6,
    chains: bool = False,
    chain_ends: int = 2,
) -> Candidates:
    """Every structurally legal candidate of the current plan.

    Moves: any movable booking to any other driver that could serve it (and, given the
    plan's `index`, into whose route it fits: `RouteArrays.fits`; with `balancing_only`,
    only to a driver with fewer rides). Swaps: pairs of
    bookings close in service order on different drivers (`swap_window` neighbours each).
    Chains (only when `chains`): from one of the `chain_ends` fullest drivers, through any
    driver, to one of the `chain_ends` emptiest.
    """
    assigned = assignment >= 0
    movable = assigned & ~problem.locked
    parts: list[tuple[int, IntArray, IntArray, IntArray, IntArray, IntArray]] = []

    if not chains:
        ok = solo & movable[:, None]
        ok[np.arange(len(assignment)), np.clip(assignment, 0, None)] &= ~assigned
        b, k = np.nonzero(ok)
        if balancing_only:  # a move to a driver with as many rides or more cannot balance
            keep = counts[assignment[b]] > counts[k]
            b, k = b[keep], k[keep]
        if index is not None and len(b):
            fits = index.fits(b, k)
            b, k = b[fits], k[fits]
        neg = np.full(len(b), -1, dtype=np.int64)
        parts.append((MOVE, b, assignment[b], k, neg, neg))

        ranked = problem.service_rank
        ranked = ranked[movable[ranked]]
        for off in range(1, swap_window + 1):
            x, y = ranked[:-off], ranked[off:]
            ax, ay = assignment[x], assignment[y]
            keep = (ax != ay) & solo[x, ay] & solo[y, ax]
            x, y, ax, ay = x[keep], y[keep], ax[keep], ay[keep]
            parts.append((SWAP, x, ax, ay, y, ax))
    else:
        by_count = np.argsort(counts, kind="stable")
        ends_from = by_count[::-1][:chain_ends]
        ends_to = by_count[:chain_ends]
        for src in ends_from:
            for dst2 in ends_to:
                if src == dst2 or counts[src] - counts[dst2] < 2:
                    continue
                for b1 in routes[src]:
                    if not movable[b1]:
                        continue
                    vias = np.nonzero(solo[b1])[0]
                    for via in vias:
                        if via in (src, dst2):
                            continue
                        b2s = np.array(
                            [x for x in routes[via] if movable[x] and solo[x, dst2]],
                            dtype=np.int64,
                        )
                        if len(b2s) == 0:
                            continue
                        one = np.ones(len(b2s), dtype=np.int64)
                        parts.append((CHAIN, one * b1, one * src, one * via, b2s, one * dst2))

    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Candidates(empty, empty, empty, empty, empty, empty, empty, np.zeros(0))
    kind = np.concatenate([np.full(len(p[1]), p[0], dtype=np.int64) for p in parts])
    b1, src, dst, b2, dst2 = (
        np.concatenate([np.asarray(p[i], dtype=np.int64) for p in parts]) for i in range(1, 6)
    )
    if len(kind) == 0:
        return Candidates(kind, b1, src, dst, b2, dst2, kind.copy(), np.zeros(0))
    dest = np.select([kind == MOVE, kind == CHAIN], [dst, dst2], default=-1)
    gap_after, sq_after = count_terms_after(counts, src, dest)
    return Candidates(kind, b1, src, dst, b2, dst2, gap_after, sq_after)
