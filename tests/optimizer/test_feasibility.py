"""Each hard constraint rejects with its reason and accepts when kept (the ride model's checks)."""

from __future__ import annotations

from optimizer.feasibility import (
    check_capability,
    check_driver_limit,
    check_locked,
    check_priority,
    check_shift,
    check_time_window,
    is_feasible_change,
    schedule_route,
    violations,
)
from optimizer.problem import Problem
from tests.optimizer.conftest import booking, day, driver


def _problem(**kw: object) -> Problem:
    ev = day(
        [driver("k0", caps=("wheelchair",)), driver("k1", start=360, end=480, max_rides=1)],
        [
            booking("b0", 400, req=("wheelchair",)),
            booking("b1", 420, priority=1),
            booking("b2", 430, locked=True),
        ],
        {"b0": "k0", "b1": "k0", "b2": "k0"},
    )
    return Problem.from_event(ev)[0]


def test_capability_rejects_missing_and_accepts_present() -> None:
    """A wheelchair booking needs a wheelchair driver."""
    p = _problem()
    assert check_capability(p, 0, 1) == "capability"
    assert check_capability(p, 0, 0) is None
    assert check_capability(p, 1, 1) is None


def test_locked_rejects_a_move_and_accepts_staying() -> None:
    """A locked booking never leaves its upstream driver."""
    p = _problem()
    assert check_locked(p, 2, 0, 1) == "locked"
    assert check_locked(p, 2, 0, 0) is None
    assert check_locked(p, 1, 0, 1) is None


def test_time_window_allows_tolerance_then_rejects() -> None:
    """A normal booking may be up to the tolerance late, not more."""
    p = _problem()
    latest = p.latest[0]
    assert check_time_window(p, 0, latest) is None
    assert check_time_window(p, 0, latest + p.rules.late_tolerance_minutes) is None
    assert check_time_window(p, 0, latest + p.rules.late_tolerance_minutes + 1) == "time_window"


def test_priority_rejects_any_lateness_of_a_high_priority_booking() -> None:
    """A high-priority booking gets no tolerance; it is judged by the priority rule."""
    p = _problem()
    latest = p.latest[1]
    assert check_priority(p, 1, latest) is None
    assert check_priority(p, 1, latest + 1) == "priority"
    assert check_time_window(p, 1, latest + 30) is None
    assert check_priority(p, 0, p.latest[0] + 5) is None


def test_shift_rejects_finishing_after_the_end() -> None:
    """The last drop-off must be done by the end of the shift."""
    p = _problem()
    assert check_shift(p, 1, 480) is None
    assert check_shift(p, 1, 481) == "shift"


def test_driver_limit_rejects_over_cap() -> None:
    """A driver's optional ride cap is respected; no cap means no limit."""
    p = _problem()
    assert check_driver_limit(p, 1, 1) is None
    assert check_driver_limit(p, 1, 2) == "driver_limit"
    assert check_driver_limit(p, 0, 50) is None


def test_schedule_waits_for_window_and_chains_rides() -> None:
    """Rides are served in order; pickups wait for the window; each leg adds travel."""
    p = _problem()
    s = schedule_route(p, 0, (0, 1, 2))
    assert s.pickup_at[0] == p.earliest[0]  # driver is already there, waits for the window
    for i in range(2):
        assert s.pickup_at[i + 1] >= s.dropoff_at[i]
    assert s.dropoff_at[0] == s.pickup_at[0] + p.service[0] + p.travel.ride[0]
    assert s.violations == frozenset()


def test_time_window_violation_from_a_crowded_route() -> None:
    """Two rides at the same time on one driver: the second is late beyond tolerance."""
    ev = day(
        [driver("k0")],
        [booking("a", 400, 405, km_east=8), booking("b", 401, 406, km_east=8)],
        {"a": "k0", "b": "k0"},
    )
    p, a = Problem.from_event(ev)
    assert ("time_window", 1) in violations(p, a)


def test_feasible_change_keeps_input_violations_but_refuses_new_ones() -> None:
    """An upstream violation is tolerated; a change adding one is not; locked cannot move."""
    ev = day(
        [driver("k0"), driver("k1")],
        [
            booking("a", 400, 405, km_east=8),
            booking("b", 401, 406, km_east=8),
            booking("c", 600, locked=True),
        ],
        {"a": "k0", "b": "k0", "c": "k1"},
    )
    p, a = Problem.from_event(ev)
    ok, added = is_feasible_change(p, a, a.copy())
    assert ok and not added
    fixed = a.copy()
    fixed[1] = 1  # b to the idle driver: removes the violation
    assert is_feasible_change(p, a, fixed)[0]
    moved_locked = a.copy()
    moved_locked[2] = 0
    ok, added = is_feasible_change(p, a, moved_locked)
    assert not ok and ("locked", 2) in added
    worse = fixed.copy()
    worse[0] = 1  # a and b together again on k1: b is late again, a new violation for `fixed`
    assert is_feasible_change(p, fixed, worse) == (False, frozenset({("time_window", 1)}))
