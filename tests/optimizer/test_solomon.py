"""Solomon's instances as days (optimizer/solomon.py) and the independent route checker
(bench/route_check.py): the files are the published ones, the days are valid and
deterministic, the checker catches broken outputs, and the pass's outputs pass it."""

from __future__ import annotations

import hashlib
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from optimizer.dispatch import optimize_event
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.solomon import DATA_DIR, INSTANCES, load_instance, solomon_day
from schemas import Assignment, HeuristicDone, Optimized

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from route_check import check

HORIZONS = {"C101": 1236, "C201": 3390, "R101": 230, "R201": 1000, "RC101": 240, "RC201": 960}


def test_files_match_their_checksums_and_parse() -> None:
    for line in (DATA_DIR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((DATA_DIR / name).read_bytes()).hexdigest() == digest, name
    for name in INSTANCES:
        inst = load_instance(name)
        assert (inst.customers, inst.vehicles, inst.horizon) == (100, 25, HORIZONS[name])
        assert (inst.ready <= inst.due).all()


@pytest.mark.parametrize("name", INSTANCES)
def test_days_are_deterministic_valid_and_feasible_upstream(name: str) -> None:
    day = solomon_day(name, 40, 6, seed=3)
    assert day == solomon_day(name, 40, 6, seed=3)
    assert day != solomon_day(name, 40, 6, seed=4)
    HeuristicDone.model_validate_json(day.model_dump_json())  # the contract holds
    assert len(day.bookings) == 40 and len(day.drivers) == 6
    _, upstream = Problem.from_event(day)
    assert (upstream >= 0).sum() == len(day.assignments) > 0
    shift = day.drivers[0].shift_end - day.drivers[0].shift_start
    assert shift.total_seconds() / 60 <= 900.0  # long horizons are scaled to one service day


def _answer(name: str) -> tuple[HeuristicDone, Optimized]:
    day = solomon_day(name, 25, 4, seed=1)
    return day, optimize_event(day, GreedyPolicy()).optimized


@pytest.mark.parametrize("name", INSTANCES)
def test_pass_outputs_keep_every_promise_of_the_independent_check(name: str) -> None:
    day, optimized = _answer(name)
    assert check(day, optimized, tolerance=10.0) == []


def test_the_checker_catches_broken_outputs() -> None:
    day, opt = _answer("C201")
    assert opt.moves_accepted > 0

    dropped = opt.model_copy(update={"assignments": opt.assignments[1:]})
    assert any("dropped" in p for p in check(day, dropped, tolerance=10.0))

    first = next(s for s in opt.schedules if s.rides)
    late = first.rides[0].pickup_at + timedelta(minutes=1)
    ride = first.rides[0].model_copy(update={"pickup_at": late})
    shown = first.model_copy(update={"rides": (ride, *first.rides[1:])})
    moved = opt.model_copy(
        update={"schedules": tuple(shown if s is first else s for s in opt.schedules)}
    )
    assert any("published times differ" in p for p in check(day, moved, tolerance=10.0))

    # Every ride on one driver: the shift cannot hold them (and the gap grows).
    one = day.drivers[0].driver_id
    piled = opt.model_copy(
        update={
            "assignments": tuple(
                Assignment(booking_id=a.booking_id, driver_id=one) for a in opt.assignments
            )
        }
    )
    problems = check(day, piled, tolerance=10.0)
    assert any("gap grew" in p for p in problems)
    assert any("late" in p or "shift ends" in p for p in problems)
