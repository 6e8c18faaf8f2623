"""Synthetic days: valid events, deterministic, the requested sizes, feasible and unfair."""

from __future__ import annotations

import time

import numpy as np
import pytest

from optimizer.feasibility import violations
from optimizer.generate import WHEELCHAIR, generate_day, generate_days, greedy_upstream
from optimizer.problem import Problem
from schemas import HeuristicDone

SIZES = [(10, 3), (50, 8), (200, 25), (500, 60)]


def _rides(day: HeuristicDone) -> np.ndarray:
    problem, assignment = Problem.from_event(day)
    return np.bincount(assignment[assignment >= 0], minlength=problem.n_drivers)


@pytest.mark.parametrize(("n", "k"), SIZES)
def test_day_validates_with_requested_sizes(n: int, k: int) -> None:
    """A generated day survives a JSON round trip and has n bookings and k drivers."""
    day = generate_day(n, k, seed=7)
    again = HeuristicDone.model_validate_json(day.model_dump_json())
    assert again == day
    assert (len(day.bookings), len(day.drivers)) == (n, k)
    assert day.mode == "auto" and day.travel_time_matrix is None


def test_same_seed_same_day_other_seed_other_day() -> None:
    """Generation is a pure function of its arguments and the seed."""
    assert generate_day(50, 8, seed=3) == generate_day(50, 8, seed=3)
    assert generate_day(50, 8, seed=3).bookings != generate_day(50, 8, seed=4).bookings


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("n", "k"), SIZES)
def test_upstream_plan_is_feasible_and_mostly_complete(n: int, k: int, seed: int) -> None:
    """The upstream plan breaks no hard constraint and leaves at most 10 % unassigned."""
    day = generate_day(n, k, seed=seed)
    problem, assignment = Problem.from_event(day)
    assert violations(problem, assignment) == frozenset()
    assert (assignment < 0).sum() <= max(2, 0.10 * n)
    assert not problem.locked[assignment < 0].any()


@pytest.mark.parametrize(("n", "k"), SIZES[1:])
def test_upstream_plan_is_unbalanced_and_balance_is_reachable(n: int, k: int) -> None:
    """The upstream gap is far above what a balance-seeking greedy reaches on the same day."""
    day = generate_day(n, k, seed=11)
    problem, _ = Problem.from_event(day)
    upstream = _rides(day)
    fair = greedy_upstream(problem, pile_minutes=-100.0)
    fair_rides = np.bincount(fair[fair >= 0], minlength=k)
    assert violations(problem, fair) == frozenset()
    gap, fair_gap = upstream.max() - upstream.min(), fair_rides.max() - fair_rides.min()
    assert gap >= 2 * fair_gap
    assert gap >= 5


def test_small_day_is_unbalanced() -> None:
    """Even a 10x3 day usually starts with a gap of at least 3, like the original 5/3/2."""
    gaps = [np.ptp(_rides(generate_day(10, 3, seed=s))) for s in range(10)]
    assert np.mean(gaps) >= 3


@pytest.mark.parametrize("seed", range(10))
def test_shares_of_wheelchairs_priorities_locks(seed: int) -> None:
    """Wheelchair, urgent and locked shares are in their ranges, with a wheelchair driver."""
    day = generate_day(200, 25, seed=seed)
    wheel_b = sum(WHEELCHAIR in b.requirements for b in day.bookings) / 200
    wheel_d = sum(WHEELCHAIR in d.capabilities for d in day.drivers) / 25
    urgent = sum(b.priority >= 1 for b in day.bookings) / 200
    locked = sum(b.locked for b in day.bookings)
    assert 0.15 <= wheel_b <= 0.25
    assert 0.28 <= wheel_d <= 0.40
    assert 0.03 <= urgent <= 0.18
    assert locked == 6
    assert all(1 <= b.service_minutes <= 10 for b in day.bookings)
    widths = {(b.pickup_latest - b.pickup_earliest).total_seconds() / 60 for b in day.bookings}
    assert widths <= {15, 20, 25, 30}


@pytest.mark.parametrize("seed", range(20))
def test_tiny_fleet_gets_a_wheelchair_driver(seed: int) -> None:
    """Whenever a booking needs a wheelchair, at least one driver has one."""
    day = generate_day(10, 2, seed=seed)
    if any(WHEELCHAIR in b.requirements for b in day.bookings):
        assert any(WHEELCHAIR in d.capabilities for d in day.drivers)


def test_places_are_in_the_geneva_area() -> None:
    """Every pickup, drop-off and start lies in lat 46.15-46.30, lon 6.05-6.25."""
    day = generate_day(200, 25, seed=1)
    places = [d.start for d in day.drivers]
    places += [b.pickup for b in day.bookings] + [b.dropoff for b in day.bookings]
    assert all(46.15 <= p.lat <= 46.30 and 6.05 <= p.lon <= 6.25 for p in places)


def test_largest_day_is_fast() -> None:
    """500 bookings x 60 drivers generate in well under two seconds."""
    start = time.perf_counter()
    generate_day(500, 60, seed=0)
    assert time.perf_counter() - start < 2.0


def test_generate_days_cycles_sizes_and_is_reproducible() -> None:
    """generate_days cycles through sizes and gives the same days for the same seed."""
    days = generate_days(4, [(10, 3), (20, 4)], seed=5)
    assert [(len(d.bookings), len(d.drivers)) for d in days] == [(10, 3), (20, 4)] * 2
    assert days == generate_days(4, [(10, 3), (20, 4)], seed=5)
    assert len({d.event_id for d in days}) == 4
    assert generate_days(2, [(10, 3), (20, 4)], seed=5) == days[:2]  # day i ignores count
