"""The original system's historical day: 5/3/2, feasible, two moves to 4/3/3, some rejections."""

from __future__ import annotations

import numpy as np

from optimizer.feasibility import is_feasible_change, violations
from optimizer.problem import Problem
from optimizer.seed import DEFAULT_PATH, seed_day, seed_day_json
from schemas import HeuristicDone


def _problem() -> tuple[Problem, np.ndarray]:
    return Problem.from_event(seed_day())


def _moved(assignment: np.ndarray, problem: Problem, booking: str, driver: str) -> np.ndarray:
    after = assignment.copy()
    after[problem.booking_ids.index(booking)] = problem.driver_ids.index(driver)
    return after


def test_file_on_disk_equals_seed_day() -> None:
    """examples/seed-day.json is exactly what seed_day() writes (`python -m optimizer.seed`)."""
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    assert text == seed_day_json()
    assert HeuristicDone.model_validate_json(text) == seed_day()


def test_heuristic_plan_is_5_3_2_and_feasible() -> None:
    """10 bookings, 3 drivers, mode auto, rides 5/3/2, no hard constraint broken."""
    day = seed_day()
    assert (len(day.bookings), len(day.drivers), day.mode) == (10, 3, "auto")
    problem, assignment = _problem()
    assert np.bincount(assignment, minlength=3).tolist() == [5, 3, 2]
    assert violations(problem, assignment) == frozenset()


def test_the_logged_moves_reach_4_3_3() -> None:
    """Booking 169 to driver B, then booking 156 to driver C: 5/3/2 -> 4/4/2 -> 4/3/3."""
    problem, start = _problem()
    first = _moved(start, problem, "booking-169", "driver-b")
    assert is_feasible_change(problem, start, first)[0]
    assert np.bincount(first, minlength=3).tolist() == [4, 4, 2]
    second = _moved(first, problem, "booking-156", "driver-c")
    assert is_feasible_change(problem, first, second)[0]
    assert np.bincount(second, minlength=3).tolist() == [4, 3, 3]


def test_other_moves_from_a_to_c_are_feasible() -> None:
    """At least two single moves from the 5-ride driver to the 2-ride driver are feasible."""
    problem, start = _problem()
    ok = [
        b
        for b in ("booking-151", "booking-154", "booking-160", "booking-169", "booking-163")
        if is_feasible_change(problem, start, _moved(start, problem, b, "driver-c"))[0]
    ]
    assert len(ok) >= 2


def test_some_moves_are_rejected_with_reasons() -> None:
    """Wheelchair, locked, time-window and priority rejections all occur on this day."""
    problem, start = _problem()
    expected = {
        ("booking-151", "driver-b"): "capability",
        ("booking-160", "driver-c"): "locked",
        ("booking-154", "driver-b"): "time_window",
        ("booking-169", "driver-c"): "time_window",
        ("booking-163", "driver-b"): "priority",
    }
    for (booking, driver), reason in expected.items():
        ok, added = is_feasible_change(problem, start, _moved(start, problem, booking, driver))
        assert not ok
        assert reason in {r for r, _ in added}, (booking, driver, added)
