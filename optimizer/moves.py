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
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from optimizer.kernels import compiled
from optimizer.objective import count_gap, count_sq_dev, count_terms_after, value_of
from optimizer.problem import BoolArray, FloatArray, IntArray, Problem
from optimizer.ride_model import dropoff_at, leg, pickup_at
from optimizer.routes import RouteArrays

MOVE, SWAP, CHAIN = 0, 1, 2
CountFilter = Literal["any", "improving", "not_worse", "same"]
"""Which candidates `generate` keeps by their ride-count terms after the move (`count_mask`)."""
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
        dst = self.dst.item(i)
        one = Step(self.b1.item(i), self.src.item(i), dst)
        b2 = self.b2.item(i)
        steps = (one,) if b2 < 0 else (one, Step(b2, dst, self.dst2.item(i)))
        return Move(KIND_NAMES[self.kind.item(i)], steps)

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


def count_mask(
    keep: CountFilter, gap_after: IntArray, sq_after: FloatArray, gap: float, sq: float
) -> BoolArray:
    """Candidates whose count terms after the move pass `keep`, against the plan's `gap`, `sq`.

    `improving`: a lower gap, or the same gap and a lower squared deviation (what the fairness
    phase takes); `not_worse`: the same or lower (what the lexicographic objective could
    accept); `same`: both terms unchanged (the cost phase's). `any`: all.
    """
    if keep == "same":
        same: BoolArray = (gap_after == gap) & (np.abs(sq_after - sq) < 1e-9)
        return same
    if keep == "any":
        return np.ones(len(gap_after), dtype=bool)
    sq_ok = (sq_after < sq - 1e-9) if keep == "improving" else (sq_after <= sq + 1e-9)
    out: BoolArray = (gap_after < gap) | ((gap_after == gap) & sq_ok)
    return out


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
    keep: CountFilter = "any",
    memo: dict[Any, Any] | None = None,
    terms: tuple[float, float] | None = None,
) -> Candidates:
    """Every structurally legal candidate of the current plan.

    Moves: any movable booking to any other driver that could serve it (and, given the
    plan's `index`, into whose route it fits: `RouteArrays.fits`; with `balancing_only`,
    only to a driver with fewer rides). Swaps: pairs of
    bookings close in service order on different drivers (`swap_window` neighbours each).
    Chains (only when `chains`): from one of the `chain_ends` fullest drivers, through any
    driver, to one of the `chain_ends` emptiest.

    `keep` drops, before the costlier route arithmetic, the candidates whose ride-count terms
    after the move the caller would drop anyway (see `count_mask`); the rest come out in the
    same order, with the same values, as without it. `memo`: the caller's cache for one
    search (see `_pair_terms`, `_swap_pairs`; the movable bookings must not change).
    `terms`: the plan's gap and squared deviation when the caller has them (else computed).
    """
    fixed = memo.get("fixed") if memo is not None else None
    if fixed is None:  # no move assigns, unassigns or unlocks a booking: fixed in a search
        assigned = assignment >= 0
        movable = assigned & ~problem.locked
        fixed = (assigned, movable, np.nonzero(assigned)[0], solo & movable[:, None])
        if memo is not None:
            memo["fixed"] = fixed
    assigned, movable, rows, base = fixed
    gap, sq = _gap_and_sq(counts) if terms is None else terms
    # (kind, b1, src, dst, b2, dst2, gap after, squared deviation after)
    parts: list[tuple[int, IntArray, IntArray, IntArray, IntArray, IntArray, IntArray, FloatArray]]
    parts = []

    grid_fits = index.fits_table() if index is not None and compiled is not None else None
    if not chains and grid_fits is not None:
        # A small day with the compiled loops: the same moves and swaps, in the same order
        # (`optimizer/_kernels.c`, `candidates`), without the dozens of numpy calls below.
        return _generate_compiled(
            problem, assignment, solo, base, movable, counts, keep, balancing_only, memo,
            grid_fits, swap_window, int(gap), float(sq),
        )  # fmt: skip
    if not chains:
        ok = base.copy()
        ok[rows, assignment[rows]] = False  # not to its own driver
        b, k = np.nonzero(ok)
        src = assignment[b]
        g_tab, s_tab, wanted = _pair_terms(counts, keep, balancing_only, memo)
        if wanted is not None:
            sel = wanted[src, k]
            b, k, src = b[sel], k[sel], src[sel]
        g_after, s_after = g_tab[src, k], s_tab[src, k]
        if index is not None and len(b):
            fits = index.fits(b, k)
            b, k, src = b[fits], k[fits], src[fits]
            g_after, s_after = g_after[fits], s_after[fits]
        neg = np.full(len(b), -1, dtype=np.int64)
        parts.append((MOVE, b, src, k, neg, neg, g_after, s_after))

        # A swap keeps every count: only a filter that keeps count-neutral moves wants one.
        if keep != "improving":
            x, y = _swap_pairs(problem, movable, swap_window, memo)
            ax, ay = assignment[x], assignment[y]
            sel = (ax != ay) & solo[x, ay] & solo[y, ax]
            x, y, ax, ay = x[sel], y[sel], ax[sel], ay[sel]
            n_sw = len(x)
            parts.append(
                (SWAP, x, ax, ay, y, ax, np.full(n_sw, gap, dtype=np.int64), np.full(n_sw, sq))
            )
    else:
        by_count = np.argsort(counts, kind="stable")
        ends_from = by_count[::-1][:chain_ends]
        ends_to = by_count[:chain_ends]
        # A few drivers: the pair's terms and filter from the cached table (the same numbers).
        small = _pair_terms_small(tuple(counts.tolist()), keep, False) if len(counts) <= 8 else None
        for src_d in ends_from:
            for dst2 in ends_to:
                if src_d == dst2 or counts[src_d] - counts[dst2] < 2:
                    continue
                # A chain's net change is one ride src_d -> dst2 (`via` gives one and takes
                # one), so every chain of this pair has the pair's count terms: once per pair.
                if small is not None:
                    g_tab, s_tab, wanted = small
                    pair_g, pair_s = g_tab[src_d, dst2 : dst2 + 1], s_tab[src_d, dst2 : dst2 + 1]
                    if wanted is not None and not wanted[src_d, dst2]:
                        continue
                else:
                    pair_g, pair_s = count_terms_after(
                        counts, np.array([src_d], dtype=np.int64), np.array([dst2], dtype=np.int64)
                    )
                    if keep != "any" and not count_mask(keep, pair_g, pair_s, gap, sq)[0]:
                        continue
                part = _chains_between(routes, solo, movable, int(src_d), int(dst2))
                if part is not None:
                    b1, via, b2 = part
                    m = len(b1)
                    parts.append(
                        (CHAIN, b1, np.full(m, src_d, dtype=np.int64), via, b2,
                         np.full(m, dst2, dtype=np.int64),
                         np.full(m, pair_g[0], dtype=np.int64), np.full(m, pair_s[0], dtype=float))
                    )  # fmt: skip

    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Candidates(empty, empty, empty, empty, empty, empty, empty, np.zeros(0))
    if len(parts) == 1:
        kind_id, b1, src, dst, b2, dst2, gap_after, sq_after = parts[0]
        kind = np.full(len(b1), kind_id, dtype=np.int64)
        return Candidates(kind, b1, src, dst, b2, dst2, gap_after, sq_after)
    kind = np.concatenate([np.full(len(p[1]), p[0], dtype=np.int64) for p in parts])
    b1, src, dst, b2, dst2, gap_after = (
        np.concatenate([np.asarray(p[i], dtype=np.int64) for p in parts]) for i in range(1, 7)
    )
    sq_after = np.concatenate([np.asarray(p[7], dtype=float) for p in parts])
    return Candidates(kind, b1, src, dst, b2, dst2, gap_after, sq_after)


def _generate_compiled(
    problem: Problem,
    assignment: IntArray,
    solo: BoolArray,
    base: BoolArray,
    movable: BoolArray,
    counts: IntArray,
    keep: CountFilter,
    balancing_only: bool,
    memo: dict[Any, Any] | None,
    fits: BoolArray,
    swap_window: int,
    gap: int,
    sq: float,
) -> Candidates:
    """`generate`'s moves and swaps (no chains) by `_kernels.candidates`; see there."""
    assert compiled is not None
    n, k = problem.n_bookings, problem.n_drivers
    g_tab, s_tab, wanted = _pair_terms(counts, keep, balancing_only, memo)
    swaps = keep != "improving"  # (as in `generate`: a swap keeps every count)
    if swaps:
        x, y = _swap_pairs(problem, movable, swap_window, memo)
    else:
        x = y = _NO_PAIRS
    cap = n * k + len(x)
    ints = np.empty((7, cap), dtype=np.int64)
    sq_after = np.empty(cap)
    assignment_c = np.ascontiguousarray(assignment, dtype=np.int64)
    m = compiled.candidates(
        n, k, assignment_c, base, wanted is not None, b"" if wanted is None else wanted,
        g_tab, s_tab, fits, swaps, x, y, solo, gap, sq, ints, sq_after,
    )  # fmt: skip
    kind, b1, src, dst, b2, dst2, gap_after = (ints[j, :m] for j in range(7))
    return Candidates(kind, b1, src, dst, b2, dst2, gap_after, sq_after[:m])


_NO_PAIRS = np.zeros(0, dtype=np.int64)


def _chains_between(
    routes: list[list[int]], solo: BoolArray, movable: BoolArray, src_d: int, dst2: int
) -> tuple[IntArray, IntArray, IntArray] | None:
    """(b1, via, b2) of every chain src_d -> via -> dst2: each movable b1 of src_d's route (in
    route order), each `via` that could serve it alone (ascending, neither end), each movable
    b2 of via's route that dst2 could serve alone (route order); None when there is none.
    One numpy expansion instead of a loop per (b1, via) pair (on a 300x40 day ~5 ms a call)."""
    is_movable = movable.tolist()
    b1s = np.array([b for b in routes[src_d] if is_movable[b]], dtype=np.int64)
    if not len(b1s):
        return None
    k = solo.shape[1]
    to_end = solo[:, dst2].tolist()
    by_via = [
        [] if via in (src_d, dst2) else [x for x in routes[via] if is_movable[x] and to_end[x]]
        for via in range(k)
    ]
    lens = np.array([len(rides) for rides in by_via], dtype=np.int64)
    flat = np.array([x for rides in by_via for x in rides], dtype=np.int64)
    starts = np.cumsum(lens) - lens
    row, via = np.nonzero(solo[b1s] & (lens > 0)[None, :])  # b1 order, then via ascending
    rep = lens[via]
    total = int(rep.sum())
    if total == 0:
        return None
    offset = np.arange(total) - np.repeat(np.cumsum(rep) - rep, rep)
    b2 = flat[np.repeat(starts[via], rep) + offset]
    return np.repeat(b1s[row], rep), np.repeat(via, rep), b2


def _gap_and_sq(counts: IntArray) -> tuple[float, float]:
    """`count_gap(counts)`, `count_sq_dev(counts)` (the same numbers: see `value_of`)."""
    value = value_of(counts, [], [], [])
    return value[0], value[1]


def _pair_terms(
    counts: IntArray, keep: CountFilter, balancing_only: bool, memo: dict[Any, Any] | None
) -> tuple[IntArray, FloatArray, BoolArray | None]:
    """(K, K) gap and squared deviation after moving one ride from driver i to driver j
    (`count_terms_after`, elementwise), and which pairs `keep` and `balancing_only` let through
    (None: all). Kept in `memo` (the cost phase's counts never change, a lookahead's repeat)."""
    key = ("pairs", counts.tobytes(), keep, balancing_only)
    if memo is not None and key in memo:
        hit: tuple[IntArray, FloatArray, BoolArray | None] = memo[key]
        return hit
    k = len(counts)
    if k <= 8:  # a few dozen pairs: Python numbers beat numpy's per-call overhead
        out = _pair_terms_small(tuple(counts.tolist()), keep, balancing_only)
        if memo is not None:
            memo[key] = out
        return out
    # Pairs that can pass at all, from the count difference d = c_i - c_j: the squared
    # deviation changes by 2 - 2d, and the gap can only drop when d >= 2. So `improving`
    # needs d >= 2, `same` d == 1, `not_worse` d >= 1, and balancing d >= 1. The terms are
    # computed for those pairs only (elementwise: the same numbers), the rest never read.
    diff = counts[:, None] - counts[None, :]
    need: BoolArray | None = {
        "improving": diff >= 2,
        "same": diff == 1,
        "not_worse": diff >= 1,
        "any": None,
    }[keep]
    if balancing_only:  # a move to a driver with as many rides or more cannot balance
        need = diff >= 1 if need is None else need & (diff >= 1)
    if need is None:
        src = np.repeat(np.arange(k, dtype=np.int64), k)
        dst = np.tile(np.arange(k, dtype=np.int64), k)
        g_after, s_after = count_terms_after(counts, src, dst)
        out = (
            g_after.reshape(k, k),
            s_after.reshape(k, k),
            None,
        )
    else:
        src, dst = np.nonzero(need)
        g_after, s_after = count_terms_after(counts, src, dst)
        g_tab = np.zeros((k, k), dtype=np.int64)
        s_tab = np.zeros((k, k))
        wanted = np.zeros((k, k), dtype=bool)
        g_tab[src, dst], s_tab[src, dst] = g_after, s_after
        wanted[src, dst] = (
            count_mask(keep, g_after, s_after, count_gap(counts), count_sq_dev(counts))
            if keep != "any"
            else True
        )
        out = (g_tab, s_tab, wanted)
    if memo is not None:
        if len(memo) > 256:  # counts seen long ago rarely come back
            for stale in [m for m in memo if m[0] == "pairs"]:
                del memo[stale]
        memo[key] = out
    return out


@lru_cache(maxsize=4096)
def _pair_terms_small(
    c: tuple[int, ...], keep: CountFilter, balancing_only: bool
) -> tuple[IntArray, FloatArray, BoolArray | None]:
    """`_pair_terms` on Python numbers: `count_terms_after`'s arithmetic, pair by pair (the
    max and min over the other drivers: the first of the top / bottom three not involved).

    A pure function of the ride counts, kept across searches (small fleets see the same
    counts day after day); the tables are read-only."""
    k = len(c)
    gap, sq = _gap_and_sq(np.asarray(c, dtype=np.int64))
    top = sorted(range(k), key=lambda d: -c[d])[:3]  # = argsort(-counts, kind="stable")[:3]
    bottom = sorted(range(k), key=lambda d: c[d])[:3]
    gaps: list[int] = []
    sqs: list[float] = []
    wanted: list[bool] = []
    for i in range(k):
        for j in range(k):
            new_src, new_dst = c[i] - 1, c[j] + 1
            hi, lo = max(new_src, new_dst), min(new_src, new_dst)
            for d in top:
                if d != i and d != j:
                    hi = max(hi, c[d])
                    break
            for d in bottom:
                if d != i and d != j:
                    lo = min(lo, c[d])
                    break
            g, q = hi - lo, sq + 2.0 * (c[j] - c[i]) + 2.0
            gaps.append(g)
            sqs.append(q)
            if keep == "same":
                ok = g == gap and abs(q - sq) < 1e-9
            elif keep == "improving":
                ok = g < gap or (g == gap and q < sq - 1e-9)
            elif keep == "not_worse":
                ok = g < gap or (g == gap and q <= sq + 1e-9)
            else:
                ok = True
            wanted.append(ok and (not balancing_only or c[i] > c[j]))
    shape = (k, k)
    out = (
        np.asarray(gaps, dtype=np.int64).reshape(shape),
        np.asarray(sqs, dtype=float).reshape(shape),
        None if keep == "any" and not balancing_only else np.asarray(wanted).reshape(shape),
    )
    for table in out:
        if table is not None:
            table.setflags(write=False)
    return out


def _swap_pairs(
    problem: Problem, movable: BoolArray, window: int, memo: dict[Any, Any] | None
) -> tuple[IntArray, IntArray]:
    """Pairs of movable bookings at most `window` apart in service order: nearest first, then
    by service order. `memo` keeps them (movable bookings stay movable during a search)."""
    key = ("swaps", window)
    if memo is not None and key in memo:
        hit: tuple[IntArray, IntArray] = memo[key]
        return hit
    ranked = problem.service_rank
    ranked = ranked[movable[ranked]]
    xs = [ranked[:-off] for off in range(1, window + 1)]
    ys = [ranked[off:] for off in range(1, window + 1)]
    empty = np.zeros(0, dtype=np.int64)
    out = (
        np.concatenate(xs).astype(np.int64) if xs else empty,
        np.concatenate(ys).astype(np.int64) if ys else empty,
    )
    if memo is not None:
        memo[key] = out
    return out
