"""One dispatch end to end without Kafka: statuses, deterministic ids, fallback, encoding."""

from __future__ import annotations

import numpy as np

from optimizer.dispatch import (
    DispatchConfig,
    audit_event_id,
    optimize_event,
    optimized_event_id,
)
from optimizer.generate import generate_day
from optimizer.moves import Candidates
from optimizer.policy import GreedyPolicy
from optimizer.swap_pass import SearchState
from schemas import HeuristicDone, Optimized, SwapAudit


class _Boom:
    version = "boom"

    def score(self, state: SearchState, candidates: Candidates) -> np.ndarray:
        raise RuntimeError("model exploded")


def test_optimized_event_round_trips_and_ids_are_deterministic(seed_day: HeuristicDone) -> None:
    """Output ids derive from the input id; the events validate against the contract."""
    a = optimize_event(seed_day, GreedyPolicy())
    b = optimize_event(seed_day, GreedyPolicy())
    assert a.optimized.event_id == b.optimized.event_id == optimized_event_id(seed_day.event_id)
    assert [x.event_id for x in a.audits] == [x.event_id for x in b.audits]
    assert a.audits[0].event_id == audit_event_id(seed_day.event_id, 0)
    assert Optimized.model_validate_json(a.optimized.model_dump_json()) == a.optimized
    for audit in a.audits:
        assert SwapAudit.model_validate_json(audit.model_dump_json()) == audit
    assert a.optimized.status == "optimized"
    assert a.optimized.metrics.before.gap == 3 and a.optimized.metrics.after.gap == 1
    assert a.optimized.moves_proposed == len(a.audits)
    assert a.optimized.moves_accepted == sum(x.decision == "accepted" for x in a.audits)


def test_schedules_cover_every_assignment(seed_day: HeuristicDone) -> None:
    """Each assigned booking appears once in the planned schedules, with ordered times."""
    out = optimize_event(seed_day, GreedyPolicy()).optimized
    planned = [r.booking_id for s in out.schedules for r in s.rides]
    assert sorted(planned) == sorted(a.booking_id for a in out.assignments)
    for s in out.schedules:
        for r in s.rides:
            assert r.pickup_at < r.dropoff_at


def test_disabled_passes_through(seed_day: HeuristicDone) -> None:
    """enabled=False: status disabled, heuristic assignment unchanged, no audits."""
    out = optimize_event(seed_day, GreedyPolicy(), DispatchConfig(enabled=False))
    assert out.optimized.status == "disabled"
    assert set(out.optimized.assignments) == set(seed_day.assignments)
    assert out.audits == ()


def test_mode_not_optimized_is_skipped(seed_day: HeuristicDone) -> None:
    """A manual dispatch is passed through with status skipped_mode."""
    manual = seed_day.model_copy(update={"mode": "manual"})
    out = optimize_event(manual, GreedyPolicy())
    assert out.optimized.status == "skipped_mode"
    assert set(out.optimized.assignments) == set(seed_day.assignments)


def test_policy_failure_falls_back_to_heuristic(seed_day: HeuristicDone) -> None:
    """Any exception in the pass: status fallback, heuristic assignment, error in reason."""
    out = optimize_event(seed_day, _Boom())
    assert out.optimized.status == "fallback"
    assert "model exploded" in out.optimized.reason
    assert set(out.optimized.assignments) == set(seed_day.assignments)
    assert out.optimized.model_version == "boom"


def test_unchanged_when_nothing_improves() -> None:
    """A day already balanced comes back unchanged."""
    day = generate_day(9, 3, 1)
    first = optimize_event(day, GreedyPolicy(), DispatchConfig())
    balanced = day.model_copy(update={"assignments": first.optimized.assignments})
    again = optimize_event(balanced, GreedyPolicy())
    assert again.optimized.status == "unchanged"


def test_published_schedules_and_before_metrics_match_a_fresh_evaluation() -> None:
    """optimize_event reuses the pass's own schedules and upstream evaluation instead of
    recomputing them: they must equal schedule_all/evaluate of the published plans."""
    from optimizer.adapter import metrics, schedules
    from optimizer.feasibility import schedule_all
    from optimizer.objective import evaluate
    from optimizer.problem import Problem

    for seed in range(12):
        day = generate_day(12 + 3 * seed, 3 + seed % 4, seed=seed)
        out = optimize_event(day, GreedyPolicy())
        assert out.result is not None
        problem, upstream = Problem.from_event(day)
        final = schedule_all(problem, out.result.assignment)
        assert list(out.result.schedules) == final
        assert out.optimized.schedules == schedules(problem, final)
        before = evaluate(schedule_all(problem, upstream), int((upstream < 0).sum()))
        assert out.optimized.metrics.before == metrics(problem, before)
