"""The ride model is written once: every user agrees with its step functions."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.feasibility import (
    check_capability,
    check_driver_limit,
    check_priority,
    check_shift,
    check_time_window,
    routes_of,
    schedule_route,
)
from optimizer.generate import generate_day
from optimizer.moves import solo_feasible
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem, Rules
from optimizer.ride_model import (
    dropoff_at,
    late_minutes,
    leg,
    pairwise_sum,
    pickup_at,
    route_times,
)
from optimizer.search_state import SearchState
from optimizer.swap_pass import run_pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.sampled_from([(10, 3), (25, 4), (60, 8)]), seed=st.integers(0, 10_000))
def test_route_times_is_the_step_functions_ride_after_ride(
    size: tuple[int, int], seed: int
) -> None:
    """`route_times` (the hot loop) equals stepping `leg` / `pickup_at` / `dropoff_at`, and
    `schedule_route`'s aggregates are sums over those steps."""
    problem, assignment = Problem.from_event(generate_day(size[0], size[1], seed))
    for k, route in enumerate(routes_of(problem, assignment)):
        times = route_times(problem, k, route)
        free, prev = float(problem.shift_start[k]), -1
        km = late = 0.0
        for i, b in enumerate(route):
            minutes, dist = leg(problem, k, prev, b)
            pickup = pickup_at(problem, free + minutes, b)
            assert times.pickup[i] == pickup
            free, prev = dropoff_at(problem, pickup, b), b
            assert times.dropoff[i] == free
            km += float(dist)
            late += float(late_minutes(problem, pickup, b))
        sched = schedule_route(problem, k, route)
        assert abs(sched.deadhead_km - km) < 1e-9
        assert abs(sched.lateness_minutes - late) < 1e-9


def test_solo_mask_is_the_first_ride_of_the_ride_model() -> None:
    """`solo_feasible` says yes exactly when the booking alone on that driver keeps its
    window and the shift under `schedule_route` (capability aside)."""
    problem, _ = Problem.from_event(generate_day(30, 5, 4))
    solo = solo_feasible(problem)
    for b in range(problem.n_bookings):
        for k in range(problem.n_drivers):
            sched = schedule_route(problem, k, [b])
            ok = not {r for r, _ in sched.violations} & {"time_window", "priority", "shift"}
            assert bool(solo[b, k]) == (ok and bool(problem.capable[b, k]))


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=0, max_size=400
    )
)
def test_pairwise_sum_is_numpys_sum_to_the_last_bit(values: list[float]) -> None:
    """`pairwise_sum` (the ride-by-ride loops' sums) equals numpy's sum exactly, so a schedule's
    aggregates do not depend on which path computed them."""
    assert pairwise_sum(values) == float(np.sum(np.asarray(values, dtype=float)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.sampled_from([(10, 3), (25, 4), (60, 8)]), seed=st.integers(0, 10_000))
def test_schedule_route_violations_are_the_named_checks(size: tuple[int, int], seed: int) -> None:
    """`schedule_route` flags exactly what the one-per-constraint functions reject, on routes
    that break windows, shifts and capabilities (every ride given to one driver)."""
    problem, assignment = Problem.from_event(generate_day(size[0], size[1], seed))
    everything = [int(b) for b in problem.service_rank]
    for k, route in [*enumerate(routes_of(problem, assignment)), (0, tuple(everything))]:
        sched = schedule_route(problem, k, route)
        times = route_times(problem, k, route)
        expected: set[tuple[str, int]] = set()
        for b, pickup in zip(route, times.pickup.tolist(), strict=True):
            for reason in (
                check_capability(problem, b, k),
                check_time_window(problem, b, pickup),
                check_priority(problem, b, pickup),
            ):
                if reason is not None:
                    expected.add((reason, b))
        if route and (reason := check_shift(problem, k, times.end)) is not None:
            expected.add((reason, k))
        if (reason := check_driver_limit(problem, k, len(route))) is not None:
            expected.add((reason, k))
        assert set(sched.violations) == expected
        assert sched.deadhead_km == float(times.leg_km.sum())
        rides = np.asarray(route, dtype=np.int64)
        assert sched.lateness_minutes == float(late_minutes(problem, times.pickup, rides).sum())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.sampled_from([(10, 3), (25, 4), (40, 6)]), seed=st.integers(0, 10_000))
def test_forward_slack_is_the_same_on_both_paths(size: tuple[int, int], seed: int) -> None:
    """Small plans compute the forward slack ride by ride; it equals the vectorised one to the
    last bit, on the upstream plan and on the pass's result."""
    problem, upstream = Problem.from_event(generate_day(size[0], size[1], seed))
    final = run_pass(problem, upstream, GreedyPolicy()).assignment
    for assignment in (upstream, final):
        routes = SearchState(problem, assignment).route_arrays()
        vector = routes._forward_slack_vector()
        small = routes._forward_slack_small()
        assert np.array_equal(small, vector)


def test_problem_memo_is_derived_data_only() -> None:
    """The per-problem tables are rebuilt, not carried, by pickle and `dataclasses.replace`,
    and a pickled problem gives the same pass."""
    problem, upstream = Problem.from_event(generate_day(12, 3, 5))
    before = run_pass(problem, upstream, GreedyPolicy())
    assert problem._memo  # the pass filled it
    clone = pickle.loads(pickle.dumps(problem))
    assert not clone._memo
    assert np.array_equal(run_pass(clone, upstream, GreedyPolicy()).assignment, before.assignment)
    stricter = dataclasses.replace(problem, rules=Rules(late_tolerance_minutes=0.0))
    assert not stricter._memo
    assert float(stricter.tolerance.max()) == 0.0 < float(problem.tolerance.max())
