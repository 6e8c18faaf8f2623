"""The second day generator: reproducible, feasible at late tolerance 0, and shaped like
patient transport (clustered slots, scarce wheelchair vans, staggered shifts, long
discharges, urgent and locked rides)."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.feasibility import violations
from optimizer.generate import WHEELCHAIR
from optimizer.patient_transport import PATIENT_RULES, patient_day, patient_days
from optimizer.problem import Problem
from schemas import HeuristicDone

SIZES = [(10, 3), (25, 4), (40, 6), (60, 8), (100, 13), (150, 18), (300, 40)]


def test_same_seed_same_day_other_seed_other_day() -> None:
    """A pure function of its arguments: byte-identical JSON for the same seed."""
    a, b = patient_day(40, 6, 3), patient_day(40, 6, 3)
    assert a.model_dump_json() == b.model_dump_json()
    assert patient_day(40, 6, 4).model_dump_json() != a.model_dump_json()


@pytest.mark.parametrize(("n", "k"), SIZES)
def test_upstream_plan_is_feasible_with_late_tolerance_zero(n: int, k: int) -> None:
    """Every size from 10x3 to 300x40: a valid event whose plan breaks no hard constraint
    when nobody may be late at all."""
    for seed in range(2):
        event = patient_day(n, k, seed)
        assert HeuristicDone.model_validate_json(event.model_dump_json()) == event
        assert (len(event.bookings), len(event.drivers)) == (n, k)
        problem, assignment = Problem.from_event(event, rules=PATIENT_RULES)
        assert violations(problem, assignment) == frozenset()
        assert (assignment >= 0).sum() >= 0.6 * n  # the desk serves most of the day itself


def test_days_look_like_patient_transport() -> None:
    """Clustered pickups, a wheelchair minority, staggered shifts, long trips, urgent and
    locked rides (pooled over a few 100x13 days)."""
    events = [patient_day(100, 13, s) for s in range(4)]
    starts, wheel_vans, drivers, locked, urgent = set(), 0, 0, 0, 0
    peak_share, long_trips = [], 0
    for ev in events:
        minutes = np.array(
            [(b.pickup_earliest.hour * 60 + b.pickup_earliest.minute) for b in ev.bookings]
        )
        # the busiest half hour holds far more than the 1/22 a flat 06:00-17:00 day would
        peak_share.append(np.bincount(minutes // 30).max() / len(minutes))
        starts |= {d.shift_start for d in ev.drivers}
        wheel_vans += sum(WHEELCHAIR in d.capabilities for d in ev.drivers)
        drivers += len(ev.drivers)
        locked += sum(b.locked for b in ev.bookings)
        urgent += sum(b.priority >= 1 for b in ev.bookings)
        problem, _ = Problem.from_event(ev, rules=PATIENT_RULES)
        long_trips += int((problem.travel.ride >= 45).sum())
    assert min(peak_share) >= 0.12
    assert 0 < wheel_vans < 0.35 * drivers
    assert len(starts) >= 6
    assert locked > 0 and urgent > 0 and long_trips > 0


def test_patient_days_are_built_with_tolerance_zero() -> None:
    """`patient_days` gives training/evaluation days with source `patient` and no tolerance."""
    days = patient_days([(25, 4)], [1, 2])
    assert [d.source for d in days] == ["patient", "patient"]
    assert all(float(d.problem.tolerance.max()) == 0.0 for d in days)


def test_generate_cli_writes_a_patient_day(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`dispatch-rl generate --kind patient` writes the same day as `patient_day`."""
    from streams.cli import main

    out = tmp_path / "pt.json"
    argv = ["generate", "--kind", "patient", "--bookings", "20", "--drivers", "4", "--seed", "9"]
    assert main([*argv, "--out", str(out)]) == 0
    assert HeuristicDone.model_validate_json(out.read_text()) == patient_day(20, 4, 9)
