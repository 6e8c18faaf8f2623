"""The one event<->domain adapter: both directions agree, unknown ids are named, keys are right."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.adapter import (
    assignment_vector,
    assignments,
    event_keys,
    moves_of,
    problem_from_event,
)
from optimizer.dispatch import optimize_event
from optimizer.generate import generate_day
from optimizer.policy import GreedyPolicy
from optimizer.problem import Problem
from optimizer.swap_pass import replay
from schemas import Assignment, HeuristicDone


def test_problem_from_event_is_what_problem_from_event_gives(seed_day: HeuristicDone) -> None:
    """`Problem.from_event` is the adapter (one mapping, not two that could drift)."""
    a, va = problem_from_event(seed_day)
    b, vb = Problem.from_event(seed_day)
    assert a.booking_ids == b.booking_ids and a.driver_ids == b.driver_ids
    assert np.array_equal(va, vb) and np.array_equal(a.earliest, b.earliest)


def test_assignments_round_trip_through_the_vector() -> None:
    """Event assignments -> vector -> event assignments gives the same pairs back."""
    day = generate_day(30, 5, 3)
    problem, vector = problem_from_event(day)
    assert set(assignments(problem, vector)) == set(day.assignments)
    assert np.array_equal(assignment_vector(problem, day.assignments), vector)


def test_audited_moves_replay_to_the_published_assignment(seed_day: HeuristicDone) -> None:
    """Decoding the accepted audits gives moves that reproduce the optimized vector."""
    outcome = optimize_event(seed_day, GreedyPolicy())
    problem, upstream = problem_from_event(seed_day)
    accepted = [a for a in outcome.audits if a.decision == "accepted"]
    assert accepted
    replayed = replay(upstream, moves_of(problem, accepted))
    assert np.array_equal(replayed, assignment_vector(problem, outcome.optimized.assignments))


def test_unknown_ids_raise_key_error_naming_them(seed_day: HeuristicDone) -> None:
    """A published assignment naming a booking the day lacks is a KeyError with the id."""
    problem, _ = problem_from_event(seed_day)
    with pytest.raises(KeyError, match="nope"):
        assignment_vector(problem, [Assignment(booking_id="nope", driver_id=problem.driver_ids[0])])


def test_event_keys_of_the_three_events(seed_day: HeuristicDone) -> None:
    """Input: all its bookings and drivers; outcome: status and model; audit: what it touched."""
    outcome = optimize_event(seed_day, GreedyPolicy())
    k = event_keys(seed_day)
    assert k.kind == "heuristic_done" and k.service_date == seed_day.service_date
    assert k.bookings == tuple(sorted(b.booking_id for b in seed_day.bookings))
    assert k.drivers == tuple(sorted(d.driver_id for d in seed_day.drivers))
    o = event_keys(outcome.optimized)
    assert o.kind == "optimized" and o.reason == "optimized"
    assert o.model_version == GreedyPolicy().version
    audit = outcome.audits[0]
    a = event_keys(audit)
    assert a.kind == "swap_audit" and a.decision == audit.decision and a.reason == audit.reason
    assert set(a.bookings) == {s.booking_id for s in audit.steps}
    assert set(a.drivers) == {s.from_driver for s in audit.steps} | {
        s.to_driver for s in audit.steps
    }
