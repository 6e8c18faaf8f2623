"""Cordeau instances as dispatch days: every instance converts, and the notes tell the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optimizer import darp
from optimizer.darp import darp_day, list_instances, load_instance, load_reference
from optimizer.feasibility import violations
from optimizer.problem import Problem
from schemas import HeuristicDone

INSTANCES = list_instances()


def test_all_48_instances_are_listed() -> None:
    """The data folder holds the 24 a- and 24 b-instances."""
    assert len(INSTANCES) == 48
    assert sum(n.startswith("a") for n in INSTANCES) == 24
    assert {"a2-16", "b8-96"} <= set(INSTANCES)


@pytest.mark.parametrize("name", INSTANCES)
def test_instance_converts_to_a_valid_feasible_day(name: str) -> None:
    """Each instance becomes a contract-valid day with a K+2n matrix and a feasible plan."""
    inst = load_instance(name)
    day, notes = darp_day(name)
    k, n = inst.vehicles, inst.requests
    assert HeuristicDone.model_validate_json(day.model_dump_json()) == day
    assert (len(day.drivers), len(day.bookings)) == (k, n)
    assert day.travel_time_matrix is not None
    assert len(day.travel_time_matrix) == k + 2 * n
    problem, assignment = Problem.from_event(day)
    assert violations(problem, assignment) == frozenset()
    assert notes.unassigned == int((assignment < 0).sum())
    assert notes.rides_per_driver == tuple(np.bincount(assignment[assignment >= 0], minlength=k))
    assert notes.has_reference == (load_reference(name) is not None)
    assert notes.used_reference == (notes.upstream == "reference")
    if notes.has_reference:
        assert notes.used_reference == all(notes.reference_route_feasible or ())


def test_matrix_follows_the_benchmark_convention() -> None:
    """Travel seconds are 60 x the Euclidean distance, in the contract's node order."""
    inst = load_instance("a2-16")
    day, _ = darp_day("a2-16")
    m = np.asarray(day.travel_time_matrix)
    k, n = inst.vehicles, inst.requests
    pickup, dropoff = k + 2 * (3 - 1), k + 2 * (3 - 1) + 1  # booking 3 = request 3
    assert m[0, pickup] == pytest.approx(60 * inst.distance(0, 3))
    assert m[pickup, dropoff] == pytest.approx(60 * inst.distance(3, n + 3))
    assert np.allclose(m[0], m[1])  # every vehicle starts at the depot


def test_outbound_pickup_window_leads_the_dropoff_window() -> None:
    """An outbound request's pickup window is the drop-off window minus service and ride."""
    inst = load_instance("a2-16")
    day, _ = darp_day("a2-16")
    problem, _ = Problem.from_event(day)
    origin_shift = problem.shift_start[0]  # minute 0 of the instance
    i = 1  # request 1: tight window on its drop-off (node n+1)
    lead = inst.service[i] + inst.distance(i, inst.requests + i)
    assert problem.earliest[0] - origin_shift == pytest.approx(inst.early[17] - lead, abs=1e-4)
    assert problem.latest[0] - origin_shift == pytest.approx(inst.late[17] - lead, abs=1e-4)
    j = 9  # request 9: tight window on its pickup
    assert problem.earliest[j - 1] - origin_shift == pytest.approx(inst.early[j])


def test_a2_16_notes_report_the_reference() -> None:
    """a2-16: the reference has 6 and 10 rides, pools passengers, and the notes say if used."""
    _, notes = darp_day("a2-16")
    assert notes.has_reference
    assert notes.reference_rides_per_driver == (6, 10)
    assert notes.reference_max_on_board is not None and max(notes.reference_max_on_board) > 1
    assert notes.used_reference  # run as single rides, both routes still fit (within tolerance)
    assert notes.rides_per_driver == (6, 10)
    assert "reference" in notes.reason


def test_infeasible_reference_falls_back_to_greedy() -> None:
    """a2-20: one reference route breaks a time window as single rides, so greedy is used."""
    _, notes = darp_day("a2-20")
    assert notes.reference_route_feasible == (True, False)
    assert not notes.used_reference
    assert notes.upstream.startswith("greedy_upstream")
    assert any("time_window" in v for v in notes.reference_violations)


def test_instance_without_reference_uses_greedy() -> None:
    """b3-24 has no reference solution: greedy insertion, and the notes say so."""
    _, notes = darp_day("b3-24")
    assert not notes.has_reference and not notes.used_reference
    assert notes.reference_rides_per_driver is None
    assert "no reference" in notes.reason


def test_data_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """DISPATCH_RL_DARP_DIR overrides the default folder, and a missing one is a clear error."""
    folder = darp.default_data_dir()
    monkeypatch.setenv(darp.DATA_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="DISPATCH_RL_DARP_DIR"):
        list_instances()
    monkeypatch.setenv(darp.DATA_DIR_ENV, str(folder))
    assert list_instances() == INSTANCES


def test_unknown_instance_is_a_clear_error() -> None:
    """Asking for an instance that is not there names it."""
    with pytest.raises(FileNotFoundError, match="z9-99"):
        load_instance("z9-99")
