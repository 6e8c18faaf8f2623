"""Per-candidate features: what the Q-network sees of one move in the current plan.

The Q-network scores each candidate from its own feature row, so it works for any fleet: a
day with 3 drivers and a day with 60 give rows of the same width. A row has four parts:

* the plan (same for every row): gap, spread of ride counts, fleet size, weekday;
* the move: its kind, its exact change of the count terms of the objective (from the
  candidate generator's `gap_after` / `sq_after`), the ride counts and workload of the drivers
  it touches relative to the fleet, whether a destination is at its ride cap;
* the booking(s): hour of the pickup window, ride duration, window width, priority, how many
  drivers could serve it at all;
* an insertion estimate per moved booking: in its new route, how much slack its own pickup
  window keeps and how much the next ride's forward time slack absorbs the push (Savelsbergh's
  forward slack). These are features, not a verdict: `SearchState.trial` decides.

Everything is numpy over all candidates at once (no Python loop per candidate), float32 out.
Bump `FEATURE_VERSION` whenever a row changes meaning; a model trained on another version is
refused at load time.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from optimizer.kernels import compiled
from optimizer.moves import CHAIN, MOVE, SWAP, Candidates
from optimizer.policy import GreedyPolicy
from optimizer.problem import IntArray
from optimizer.ride_model import pairwise_sum, tables
from optimizer.swap_pass import SearchState

FEATURE_VERSION = "cand-v1"
FEATURE_NAMES: tuple[str, ...] = (
    # the plan
    "plan_gap_log",
    "plan_count_std",
    "plan_drivers_log",
    "plan_rides_per_driver",
    "plan_weekday_sin",
    "plan_weekday_cos",
    # the move
    "kind_move",
    "kind_swap",
    "kind_chain",
    "gain_gap",
    "gain_sq",
    "src_count",
    "dst_count",
    "end_count",
    "src_is_max",
    "dst_is_min",
    "dest_full",
    "src_workload",
    "dst_workload",
    # the booking moved first
    "b1_hour_sin",
    "b1_hour_cos",
    "b1_duration",
    "b1_window",
    "b1_priority",
    "b1_flex",
    "b1_pickup_slack",
    "b1_next_slack",
    "b1_leg",
    # the booking moved second (swap and chain), zeros for a plain move
    "has_b2",
    "b2_flex",
    "b2_pickup_slack",
    "b2_next_slack",
    "b2_leg",
)
N_FEATURES = len(FEATURE_NAMES)
FEATURE_BOUND = 10.0
"""Every feature lies in [-FEATURE_BOUND, FEATURE_BOUND] (the observation space's bounds)."""

Float32Array = npt.NDArray[np.float32]
_GREEDY = GreedyPolicy()


def shortlist(state: SearchState, candidates: Candidates, limit: int) -> IntArray:
    """Indices of at most `limit` candidates, the best by the greedy count-gain key, ascending.

    Scoring every candidate of a 300-booking day (thousands per step) with a network costs more
    than the pass may spend, and the ones with the least count gain are never checked anyway
    (the validator stops after `max_checks`). Days with fewer candidates keep them all.
    """
    n = len(candidates)
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    key = _GREEDY.count_key(state, candidates)
    top = np.argpartition(-key, limit - 1)[:limit]
    return np.sort(top).astype(np.int64)


def candidate_features(state: SearchState, c: Candidates) -> Float32Array:
    """The (len(c), N_FEATURES) feature matrix of the candidates in the current plan.

    Built block by block (the plan's scalars, the move's columns, the bookings' static columns,
    the insertion estimates), each cast to float32 once: the same values as column by column,
    with a few numpy calls instead of one per column (this runs every step of every pass).
    """
    n = len(c)
    if n == 0:
        return np.zeros((0, N_FEATURES), dtype=np.float32)
    p = state.problem
    k = p.n_drivers
    count_list = state.counts.tolist()
    counts = np.asarray(count_list, dtype=float)
    # `counts.mean()`, `counts.std()`, `workload.mean()` on Python numbers with numpy's own
    # summation (`pairwise_sum`), so to the last bit the same (ride counts are whole numbers).
    mean = pairwise_sum([float(x) for x in count_list]) / k
    std = math.sqrt(pairwise_sum([(x - mean) * (x - mean) for x in count_list]) / k)
    gap, sq = float(state.value[0]), float(state.value[1])
    workload = state.workload
    w_mean = pairwise_sum(workload.tolist()) / k
    routes = state.route_arrays()

    weekday = p.origin.weekday() if p.origin is not None else 0
    plan = (
        math.log1p(gap) / 3.0,
        std / 5.0,
        math.log1p(k) / 4.0,
        min(mean / 10.0, FEATURE_BOUND),
        math.sin(2 * math.pi * weekday / 7),
        math.cos(2 * math.pi * weekday / 7),
    )
    if compiled is not None and N_FEATURES == 33:
        return _features_compiled(state, c, plan, count_list, mean, std, gap, sq, w_mean)
    if n <= _SMALL:
        return _features_small(state, c, plan, count_list, mean, std, gap, sq, w_mean)
    out = np.zeros((n, N_FEATURES), dtype=np.float32)
    out[:, : len(plan)] = plan
    col = len(plan)

    kind = c.kind
    has2 = c.b2 >= 0
    scale = 1.0 + std
    is_chain = kind == CHAIN
    end = np.where(is_chain, c.dst2, c.dst)  # the driver that gains a ride, if any
    cap = p.max_rides
    full = (cap >= 0) & (state.counts >= cap)
    move_cols = (
        kind == MOVE,
        kind == SWAP,
        is_chain,
        gap - c.gap_after,
        (sq - c.sq_after) / 10.0,
        (counts[c.src] - mean) / scale,
        (counts[c.dst] - mean) / scale,
        is_chain * (counts[end] - mean) / scale,
        counts[c.src] == max(count_list),
        counts[end] == min(count_list),
        (kind != SWAP) & full[end],
        (workload[c.src] - w_mean) / 120.0,
        (workload[c.dst] - w_mean) / 120.0,
    )
    # Every column is a bool, a small whole number or a float64 (float32 for `flex`): one
    # float64 block holds each exactly, so one cast to float32 gives what a cast per column
    # gives.
    out[:, col : col + len(move_cols)] = np.array(move_cols).T
    col += len(move_cols)

    b1 = c.b1
    static = _booking_features(state)
    out[:, col : col + static.shape[1]] = static[b1]
    col += static.shape[1]
    flex = static[:, -1]
    skip1 = np.where(has2, c.b2, -1)  # b2 leaves b1's new route in a swap or a chain
    own1, downstream1, leg1, _ = routes.insertion(b1, c.dst, skip1)

    b2 = np.where(has2, c.b2, 0)
    swap = kind == SWAP
    dest2 = np.where(swap, c.src, end)
    skip2 = np.where(swap, b1, -1)
    own2, downstream2, leg2, _ = routes.insertion(b2, dest2, skip2)
    rest = (
        own1 / 60.0,
        downstream1 / 60.0,
        leg1 / 30.0,
        has2,
        has2 * flex[b2],
        has2 * (own2 / 60.0),
        has2 * (downstream2 / 60.0),
        has2 * (leg2 / 30.0),
    )
    out[:, col : col + len(rest)] = np.array(rest).T
    col += len(rest)
    assert col == N_FEATURES
    np.clip(out, _LOW, _HIGH, out=out)
    return out


# At most this many candidates (every step of a 10x3 day has 1 to 16): the rows are built on
# Python floats, the same operations in the same order as the columns above (float64, then one
# cast to float32), since numpy's per-call overhead is most of the cost of a few rows.
_SMALL = 24


def _features_small(
    state: SearchState,
    c: Candidates,
    plan: tuple[float, ...],
    count_list: list[int],
    mean: float,
    std: float,
    gap: float,
    sq: float,
    w_mean: float,
) -> Float32Array:
    """`candidate_features` row by row (bit for bit the same: `test_fast_paths`)."""
    p = state.problem
    routes = state.route_arrays()
    kind, src, dst, dst2 = c.kind.tolist(), c.src.tolist(), c.dst.tolist(), c.dst2.tolist()
    b1s, b2s = c.b1.tolist(), c.b2.tolist()
    gap_after, sq_after = c.gap_after.tolist(), c.sq_after.tolist()
    counts = [float(x) for x in count_list]
    workload = state.workload.tolist()
    caps = tables(p).max_rides
    full = [0 <= cap <= x for cap, x in zip(caps, count_list, strict=True)]
    top, bottom = max(count_list), min(count_list)
    scale = 1.0 + std
    static = _booking_features(state)
    # The insertion estimates of both bookings (as in `candidate_features`): b1 into dst
    # without b2 (which leaves in a swap or chain); b2 (0 for a plain move) into the driver it
    # goes to, without b1 in a swap.
    ends = [z if k == CHAIN else y for k, y, z in zip(kind, dst, dst2, strict=True)]
    second = [max(x, 0) for x in b2s]
    ins = routes.insertion_lists(b1s, dst, [max(x, -1) for x in b2s])
    ins2 = routes.insertion_lists(
        second,
        [x if k == SWAP else e for k, x, e in zip(kind, src, ends, strict=True)],
        [x if k == SWAP else -1 for k, x in zip(kind, b1s, strict=True)],
    )
    firsts = static[c.b1].tolist()
    flex = [float(x) for x in static[second, -1]]
    rows: list[list[float]] = []
    for i, k in enumerate(kind):
        chain = 1.0 if k == CHAIN else 0.0
        two = 1.0 if b2s[i] >= 0 else 0.0
        a, b = src[i], dst[i]
        e = ends[i]
        rows.append(
            [
                *plan,
                1.0 if k == MOVE else 0.0,
                1.0 if k == SWAP else 0.0,
                chain,
                gap - gap_after[i],
                (sq - sq_after[i]) / 10.0,
                (counts[a] - mean) / scale,
                (counts[b] - mean) / scale,
                chain * (counts[e] - mean) / scale,
                1.0 if counts[a] == top else 0.0,
                1.0 if counts[e] == bottom else 0.0,
                1.0 if k != SWAP and full[e] else 0.0,
                (workload[a] - w_mean) / 120.0,
                (workload[b] - w_mean) / 120.0,
                *firsts[i],
                ins[0][i] / 60.0,
                ins[1][i] / 60.0,
                ins[2][i] / 30.0,
                two,
                two * flex[i],
                two * (ins2[0][i] / 60.0),
                two * (ins2[1][i] / 60.0),
                two * (ins2[2][i] / 30.0),
            ]
        )
    out: Float32Array = np.array(rows, dtype=np.float64).astype(np.float32)
    np.clip(out, _LOW, _HIGH, out=out)
    return out


def _features_compiled(
    state: SearchState,
    c: Candidates,
    plan: tuple[float, ...],
    count_list: list[int],
    mean: float,
    std: float,
    gap: float,
    sq: float,
    w_mean: float,
) -> Float32Array:
    """`_features_small`'s rows by `optimizer/_kernels.c` (`features`: the same expressions in
    the same order, any number of rows; bit for bit, `tests/optimizer/test_kernels.py`)."""
    assert compiled is not None
    p = state.problem
    routes = state.route_arrays()
    caps = tables(p).max_rides
    full = np.array([0 <= cap <= x for cap, x in zip(caps, count_list, strict=True)])
    kind, b1, b2 = c.kind, c.b1, c.b2
    swap = kind == SWAP
    # b1 into its new driver without b2 (which leaves in a swap or chain); b2 (0 for a plain
    # move) into the driver it goes to, without b1 in a swap (as `_features_small`).
    first = routes.insertion_rows(b1, c.dst, b2)
    second = routes.insertion_rows(
        np.maximum(b2, 0),
        np.where(swap, c.src, np.where(kind == CHAIN, c.dst2, c.dst)),
        np.where(swap, b1, -1),
    )
    out = np.empty((len(c), N_FEATURES), dtype=np.float32)
    compiled.features(
        np.asarray(plan, dtype=np.float64), kind, c.src, c.dst, c.dst2, b1, b2, c.gap_after,
        c.sq_after, np.asarray(count_list, dtype=np.float64),
        np.ascontiguousarray(state.workload, dtype=np.float64), full, float(max(count_list)),
        float(min(count_list)), mean, 1.0 + std, gap, sq, w_mean, _booking_features(state),
        np.concatenate([first[:3], second[:3]]), _LOW, _HIGH, out,
    )  # fmt: skip
    return out


def _bounds() -> tuple[Float32Array, Float32Array]:
    """Per-column clip bounds (one `np.clip` for the whole matrix)."""
    low = np.full(N_FEATURES, -FEATURE_BOUND, dtype=np.float32)
    high = np.full(N_FEATURES, FEATURE_BOUND, dtype=np.float32)
    for names, lo, hi in (
        (("gain_gap", "gain_sq"), -2.0, 2.0),
        (("src_count", "dst_count", "end_count", "src_workload", "dst_workload"), -5.0, 5.0),
        (("b1_pickup_slack", "b1_next_slack", "b2_pickup_slack", "b2_next_slack"), -3.0, 3.0),
        (("b1_leg", "b2_leg"), 0.0, 4.0),
    ):
        for name in names:
            i = FEATURE_NAMES.index(name)
            low[i], high[i] = lo, hi
    return low, high


_LOW, _HIGH = _bounds()


def _booking_features(state: SearchState) -> npt.NDArray[np.float32]:
    """Per-booking columns that never change during a day: built on a problem's first scoring
    and kept on the problem (`Problem.memo`), so they live exactly as long as it does (a
    module-level cache kept up to 4,096 finished days' problems alive in a worker)."""
    return state.problem.memo("dqn_booking_features", lambda _: _build_booking_features(state))


def _build_booking_features(state: SearchState) -> npt.NDArray[np.float32]:
    p = state.problem
    mid = (p.earliest + p.latest) / 2.0
    table = np.stack(
        [
            np.sin(2 * np.pi * mid / 1440.0),
            np.cos(2 * np.pi * mid / 1440.0),
            np.clip((p.service + p.travel.ride) / 60.0, 0, 4),
            np.clip((p.latest - p.earliest) / 60.0, 0, 4),
            p.high_priority.astype(float),
            state.solo.sum(axis=1) / max(p.n_drivers, 1),
        ],
        axis=1,
    ).astype(np.float32)
    return table
